/**
 * The one launcher of the proof suites' long-running children (`autonomy
 * serve`, `edged run`): start on fixed arguments, ready when the caller's
 * probe says so, stop with SIGTERM (SIGKILL after 30 s) or SIGKILL, start
 * again on the same arguments. The child's stderr goes to a log file (0600,
 * optionally redacted) and its last lines into start errors. Every child
 * still running when this process exits is SIGKILLed, and with
 * `exitWithStdin` a child also ends when this process dies by SIGKILL (no
 * exit hook runs then; the kernel closes the pipe).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import type { WriteStream } from "node:fs";
import { ProofError } from "./errors.js";
import type { ProofErrorCode } from "./errors.js";

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

export interface ProofChildOptions {
  /** How messages name the child: "autonomy serve", "edged edge-a". */
  name: string;
  /** `node` arguments, the launcher script first; the same at every start. */
  args: readonly string[];
  /** The child's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
  logFile: string;
  /** Applied to stderr before the log file and the error messages see it (to mask secrets). */
  redact?: (text: string) => string;
  /**
   * Hold a stdin pipe nobody writes to. The child must end at its end of file
   * (`autonomy serve --exit-with-stdin`): then it does not outlive this
   * process even when this one is SIGKILLed.
   */
  exitWithStdin?: boolean;
  /** One readiness check, retried every 50 ms: true (or resolving) when ready; false or a throw is "not yet". */
  probe: () => Promise<boolean>;
  readyTimeoutMs: number;
  /** What a start error is. */
  errorCode: ProofErrorCode;
  /** Completes "<name> exited (1) before …": "it was ready", "its control socket answered". */
  readyMeans: string;
  /** Completes "<name> did not …": "answer /readyz 200 within 60 s". */
  timeoutMeans: string;
}

/** Every child still running is killed when this process exits, whatever the reason: none outlives a crashed run. */
const live = new Set<ChildProcess>();
let exitHook = false;
function track(child: ChildProcess): void {
  live.add(child);
  child.once("exit", () => live.delete(child));
  if (!exitHook) {
    exitHook = true;
    process.once("exit", () => {
      for (const c of live) c.kill("SIGKILL");
    });
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class ProofChild {
  /** The pid of the current child (changes at every start). */
  pid = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  private tail = "";
  private readonly log: WriteStream;

  constructor(private readonly o: ProofChildOptions) {
    this.log = createWriteStream(o.logFile, { flags: "a", mode: 0o600 });
  }

  get logFile(): string {
    return this.o.logFile;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the child and resolves once the probe says it is ready (PROOF_… errorCode when it exits first or times out). */
  async start(): Promise<void> {
    if (this.running) throw new ProofError(this.o.errorCode, `${this.o.name} is already running (pid ${this.pid})`, { hint: "stop() it first" });
    this.tail = "";
    const child = spawn(process.execPath, [...this.o.args], { stdio: [this.o.exitWithStdin === true ? "pipe" : "ignore", "ignore", "pipe"], env: this.o.env ?? process.env });
    child.stdin?.on("error", () => undefined); // EPIPE once the child is gone: expected
    track(child);
    this.child = child;
    this.pid = child.pid ?? 0;
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    child.stderr?.on("data", (d: Buffer) => {
      const text = this.o.redact ? this.o.redact(d.toString("utf8")) : d.toString("utf8");
      this.log.write(text);
      this.tail = (this.tail + text).slice(-4000);
    });
    await this.waitReady(child);
  }

  private async waitReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + this.o.readyTimeoutMs;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new ProofError(this.o.errorCode, `${this.o.name} exited (${child.exitCode ?? child.signalCode ?? "?"}) before ${this.o.readyMeans}: ${lastLines(this.tail)}`, { hint: `see ${this.o.logFile}; run \`npm run build\` if dist/ is missing` });
      }
      if (await this.o.probe().catch(() => false)) return;
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new ProofError(this.o.errorCode, `${this.o.name} did not ${this.o.timeoutMeans}: ${lastLines(this.tail)}`, { hint: `see ${this.o.logFile}` });
      }
      await sleep(50);
    }
  }

  /** Signals the child and waits for it to exit; a SIGTERM not obeyed within 30 s is followed by SIGKILL, so stop() always returns. */
  async stop(signal: "SIGTERM" | "SIGKILL"): Promise<ExitInfo> {
    const child = this.child;
    if (!child || !this.running) return this.exited;
    child.kill(signal);
    const timer = signal === "SIGTERM" ? setTimeout(() => child.kill("SIGKILL"), 30_000) : undefined;
    try {
      return await this.exited;
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  /** Sends a signal that does not end the child (SIGHUP: reload), if it runs. */
  signal(sig: "SIGHUP"): void {
    if (this.running) this.child?.kill(sig);
  }

  /** SIGKILLs the child if it still runs and closes the log. */
  async dispose(): Promise<void> {
    if (this.running) await this.stop("SIGKILL");
    await new Promise<void>((resolve) => this.log.end(() => resolve()));
  }
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-3).join(" | ") || "(no output)";
}
