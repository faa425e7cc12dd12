/**
 * A child process the chaos harness SIGKILLs and restarts: line-buffered
 * stdout (a torn last line is never counted), waiters for lines, prewarming
 * (spawned, loads its modules, waits for `go`).
 */
import { spawn } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";

export class ChaosChild {
  readonly child: ChildProcessWithoutNullStreams;
  readonly lines: string[] = [];
  stderr = "";
  #partial = "";
  #waiters: { match: (l: string) => boolean; resolve: (l: string | undefined) => void }[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv }) {
    this.child = spawn(process.execPath, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout.setEncoding("utf8");
    this.child.stdout.on("data", (chunk: string) => {
      const parts = (this.#partial + chunk).split("\n");
      this.#partial = parts.pop() ?? "";
      for (const l of parts) {
        this.lines.push(l);
        this.#waiters = this.#waiters.filter((w) => (w.match(l) ? (w.resolve(l), false) : true));
      }
    });
    this.child.stderr.setEncoding("utf8");
    this.child.stderr.on("data", (c: string) => {
      if (this.stderr.length < 20_000) this.stderr += c;
    });
    this.child.stdin.on("error", () => undefined); // EPIPE after a kill
    // "close", not "exit": stdout is drained by then, so no line printed before the kill is missed.
    this.exited = new Promise((resolve) => this.child.once("close", (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal })));
    void this.exited.then(() => {
      for (const w of this.#waiters) w.resolve(undefined);
      this.#waiters = [];
    });
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first line matching, past or future; undefined if the child exits first. */
  waitFor(match: (l: string) => boolean): Promise<string | undefined> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    if (!this.alive) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push({ match, resolve }));
  }

  send(line: string): void {
    if (this.alive) this.child.stdin.write(line + "\n");
  }

  async kill(): Promise<void> {
    if (this.alive) this.child.kill("SIGKILL");
    await this.exited;
  }
}
