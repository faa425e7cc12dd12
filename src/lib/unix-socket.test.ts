import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import type { Server } from "node:net";
import { lstat, mkdtemp, readFile, readdir, readlink, rename, rm, stat, symlink, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { listenUnixSocket, unixSocketAnswers } from "./unix-socket.js";
import type { SocketRefusal, UnixListener } from "./unix-socket.js";

/** A plain net server in the shape listenUnixSocket takes (Fastify's `listen({ path })`). */
function netListener(): UnixListener & { server: Server; close(): Promise<void> } {
  const server = createServer((s) => s.destroy());
  return {
    server,
    listen: ({ path }) => new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(path, () => resolve(path));
    }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

class Refused extends Error {
  constructor(message: string, readonly why: SocketRefusal) {
    super(message);
  }
}
const opts = { mode: 0o600, inUse: (message: string, why: SocketRefusal) => new Refused(message, why) };

/** The socket file a SIGKILLed process leaves behind: bound, nobody listening. */
function staleSocket(path: string): void {
  const r = spawnSync(process.execPath, ["-e", `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`]);
  if (r.signal !== "SIGKILL") throw new Error(`the stale-socket maker did not die by SIGKILL: ${r.stderr.toString()}`);
}

describe("listenUnixSocket", () => {
  let dir: string;
  const closers: Array<() => Promise<void>> = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "unix-socket-"));
  });
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
    await rm(dir, { recursive: true, force: true });
  });

  async function listen(path: string, mode = 0o600): Promise<() => Promise<void>> {
    const l = netListener();
    const unlink = await listenUnixSocket(l, path, { ...opts, mode });
    closers.push(() => l.close());
    return unlink;
  }

  it("serves with the given mode from the first moment and leaves no temporary directory behind", async () => {
    const sock = join(dir, "a.sock");
    await listen(sock);
    expect((await stat(sock)).mode & 0o777).toBe(0o600);
    expect(await unixSocketAnswers(sock)).toBe(true);
    const other = join(dir, "b.sock");
    await listen(other, 0o660);
    expect((await stat(other)).mode & 0o777).toBe(0o660);
    expect((await readdir(dir)).sort()).toEqual(["a.sock", "b.sock"]);
  });

  it("replaces a stale socket nobody answers on", async () => {
    const sock = join(dir, "stale.sock");
    staleSocket(sock);
    expect((await lstat(sock)).isSocket()).toBe(true);
    expect(await unixSocketAnswers(sock)).toBe(false);
    await listen(sock);
    expect(await unixSocketAnswers(sock)).toBe(true);
  });

  it("refuses a live socket and leaves it serving", async () => {
    const sock = join(dir, "live.sock");
    await listen(sock);
    const second = netListener();
    await expect(listenUnixSocket(second, sock, opts)).rejects.toMatchObject({ why: "live", message: expect.stringContaining(sock) as unknown });
    expect(second.server.listening).toBe(false);
    expect(await unixSocketAnswers(sock)).toBe(true);
  });

  it("refuses a plain file, and keeps it", async () => {
    const f = join(dir, "plain");
    await writeFile(f, "keep me");
    await expect(listenUnixSocket(netListener(), f, opts)).rejects.toMatchObject({ why: "not-a-socket" });
    expect(await readFile(f, "utf8")).toBe("keep me");
  });

  it("refuses a planted symlink (to a stale socket, or to a file elsewhere) without following or removing it", async () => {
    const target = join(dir, "target.sock");
    staleSocket(target);
    const link = join(dir, "ctl.sock");
    await symlink(target, link);
    await expect(listenUnixSocket(netListener(), link, opts)).rejects.toMatchObject({ why: "not-a-socket" });
    expect(await readlink(link)).toBe(target);
    expect((await lstat(target)).isSocket()).toBe(true);
    const victim = join(dir, "victim");
    await writeFile(victim, "precious");
    const link2 = join(dir, "ctl2.sock");
    await symlink(victim, link2);
    await expect(listenUnixSocket(netListener(), link2, opts)).rejects.toMatchObject({ why: "not-a-socket" });
    expect(await readFile(victim, "utf8")).toBe("precious");
  });

  it("the returned function removes the socket only while it is still ours", async () => {
    const sock = join(dir, "mine.sock");
    const unlinkFirst = await listen(sock);
    await unlinkFirst();
    expect(existsSync(sock)).toBe(false);
    // Another server took the path after ours went away: our late cleanup must not remove its socket.
    const l = netListener();
    await l.listen({ path: join(dir, "tmp.sock") });
    closers.push(() => l.close());
    const unlinkSecond = await listen(sock);
    await rename(join(dir, "tmp.sock"), sock);
    await unlinkSecond();
    expect((await lstat(sock)).isSocket()).toBe(true);
  });
});
