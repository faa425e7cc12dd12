import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The installed CLI launcher (bin/autonomy.js), two levels up from src/quickstart or dist/quickstart. */
const AUTONOMY_BIN = fileURLToPath(new URL("../../bin/autonomy.js", import.meta.url));

export interface RuntimeChild {
  child: ChildProcess;
  url: string;
  /** Resolves with the exit status once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * `autonomy runtime start --state-root S --listen 127.0.0.1:0 --json` as a
 * real child process (so the tutorial can SIGKILL it); resolves once its
 * ready line on stderr names the URL.
 */
export async function startRuntimeChild(stateRoot: string, timeoutMs = 30_000): Promise<RuntimeChild> {
  const child = spawn(process.execPath, [AUTONOMY_BIN, "runtime", "start", "--state-root", stateRoot, "--listen", "127.0.0.1:0", "--json"], { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let stderr = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the runtime did not become ready in ${timeoutMs} ms: ${stderr.slice(-500)}`)), timeoutMs);
    child.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
      for (const line of stderr.split("\n")) {
        const ready = readyUrl(line);
        if (ready) {
          clearTimeout(timer);
          resolve(ready);
        }
      }
    });
    void exited.then((e) => {
      clearTimeout(timer);
      reject(new Error(`the runtime exited (${e.code ?? e.signal ?? "?"}) before it was ready: ${stderr.slice(-500)}`));
    });
  });
  return { child, url, exited };
}

function readyUrl(line: string): string | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const doc = JSON.parse(line) as { ok?: boolean; url?: string | null };
    return doc.ok === true && typeof doc.url === "string" ? doc.url : undefined;
  } catch {
    return undefined;
  }
}
