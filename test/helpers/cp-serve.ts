/**
 * A real `autonomy serve` child process for end-to-end tests (the built
 * binary: `npm run build` first): started on a free loopback port with
 * `--json`, resolved once its ready line names the URL. The lab's own
 * launcher (src/proofs) serves `autonomy lab run`; this one is the tests'.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { AUTONOMY_BIN } from "./cli.js";

export interface Served {
  child: ChildProcess;
  url: string;
  /** Everything the server wrote on stderr so far (the bootstrap token line, JSON logs). */
  stderr: () => string;
  /** The exit code (null when killed by a signal). */
  exited: Promise<number | null>;
}

/** Starts `autonomy serve --listen 127.0.0.1:0 --json ARGS` and waits (up to `readyMs`) for its ready line. */
export async function startServe(args: string[], readyMs = 30_000): Promise<Served> {
  const child = spawn(process.execPath, [AUTONOMY_BIN, "serve", "--listen", "127.0.0.1:0", "--json", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not become ready:\n${err}`)), readyMs);
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString("utf8");
      const m = /^\{"ok":true,"url":"([^"]+)"/m.exec(err);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((code) => reject(new Error(`serve exited ${String(code)}:\n${err}`)));
  });
  return { child, url, stderr: () => err, exited };
}

/** The owner token `--bootstrap-token-file` received. */
export async function bootstrapToken(tokenFile: string): Promise<string> {
  return (await readFile(tokenFile, "utf8")).trim();
}

/** SIGKILLs the server if it still runs (for cleanup lists). */
export function killServe(s: Served): Promise<void> {
  if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill("SIGKILL");
  return Promise.resolve();
}
