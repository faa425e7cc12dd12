import { createServer } from "node:net";

/**
 * A TCP port on 127.0.0.1 nobody listens on right now (the kernel picks it).
 * Racy by nature — another process may take it before the caller binds — so
 * use it only for child processes that must be told their port up front.
 */
export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
