/**
 * A real `autonomy serve` child process for the proof suites: the built CLI
 * (bin/autonomy.js over dist/), on 127.0.0.1 and a free port, its owner token
 * from `--bootstrap-token-file`. It can be SIGTERMed or SIGKILLed and started
 * again on the same database and the same port (the suites that prove
 * recovery need exactly that). Its stderr goes to `serve.log` in the work
 * directory, with every token secret masked.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import type { WriteStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freeLoopbackPort, messageOf } from "../lib/index.js";
import { ProofError } from "./errors.js";

/** The CLI launcher the package installs as `autonomy` (src/proofs/ and dist/proofs/ both sit two levels down). */
export const AUTONOMY_BIN = fileURLToPath(new URL("../../bin/autonomy.js", import.meta.url));

export interface ControlPlaneProcess {
  url: string;
  ownerToken: string;
  /** The pid of the current child (changes at every start). */
  pid: number;
  /** SIGTERM or SIGKILL the server and wait for it to exit. */
  stop(signal: "SIGTERM" | "SIGKILL"): Promise<{ code: number | null; signal: string | null }>;
  /** Start it again on the same database and the same port; resolves when /readyz answers 200. */
  start(): Promise<void>;
  /** Whether a child is running now. */
  readonly running: boolean;
  /** Where the server's stderr goes (tokens masked). */
  readonly logFile: string;
}

export interface LaunchOptions {
  /** SQLite path or postgres:// URL (never printed: it may carry a password). */
  db: string;
  workDir: string;
  /** Extra serve flags (the suite's). */
  args?: readonly string[];
  /** Owner token to use when the database already had one (no bootstrap happens then). */
  fallbackToken?: string;
  /** How long to wait for /readyz (default 60 s). */
  readyTimeoutMs?: number;
}

/** A launched server; `dispose()` kills it (SIGKILL) if it still runs and closes the log. */
export interface LaunchedControlPlane extends ControlPlaneProcess {
  dispose(): Promise<void>;
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

/** Token secrets look like `aop_<id>_<secret>` (operator), `aon_…` (node), `aoe_…` (enrollment): keep the id, mask the secret. */
export function maskTokens(text: string): string {
  return text.replace(/\b(ao[pne]_[A-Za-z0-9]+_)[A-Za-z0-9_-]+/g, "$1<masked>");
}


const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

class ServeChild implements LaunchedControlPlane {
  url = "";
  ownerToken = "";
  pid = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<{ code: number | null; signal: string | null }> = Promise.resolve({ code: null, signal: null });
  private port = 0;
  private readonly log: WriteStream;
  private tail = "";
  readonly logFile: string;
  readonly tokenFile: string;

  constructor(private readonly o: LaunchOptions) {
    this.logFile = join(o.workDir, "serve.log");
    this.tokenFile = join(o.workDir, "owner.token");
    this.log = createWriteStream(this.logFile, { flags: "a", mode: 0o600 });
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    if (this.running) throw new ProofError("PROOF_CP_START_FAILED", `the control plane is already running (pid ${this.pid})`, { hint: "stop() it first" });
    if (this.port === 0) this.port = await freeLoopbackPort();
    // The store location goes through the environment (AUTONOMY_DB), never argv: a postgres:// URL may carry a
    // password, and argv is readable by every local user (ps, /proc/<pid>/cmdline); /proc/<pid>/environ is not.
    // --exit-with-stdin + a stdin pipe nobody writes to: when this process dies, even by SIGKILL (no exit hook runs),
    // the kernel closes the pipe and the server shuts down instead of living on as an orphan.
    const args = [AUTONOMY_BIN, "serve", "--listen", `127.0.0.1:${this.port}`, "--json", "--exit-with-stdin", "--bootstrap-token-file", this.tokenFile, ...(this.o.args ?? [])];
    this.tail = "";
    const child = spawn(process.execPath, args, { stdio: ["pipe", "ignore", "pipe"], env: { ...process.env, AUTONOMY_DB: this.o.db } });
    child.stdin?.on("error", () => undefined); // EPIPE once the child is gone: expected
    track(child);
    this.child = child;
    this.pid = child.pid ?? 0;
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    child.stderr?.on("data", (d: Buffer) => {
      const text = maskTokens(d.toString("utf8"));
      this.log.write(text);
      this.tail = (this.tail + text).slice(-4000);
    });
    this.url = `http://127.0.0.1:${this.port}`;
    await this.waitReady(child);
    this.ownerToken = await this.readToken();
  }

  private async waitReady(child: ChildProcess): Promise<void> {
    const deadline = Date.now() + (this.o.readyTimeoutMs ?? 60_000);
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new ProofError("PROOF_CP_START_FAILED", `autonomy serve exited (${child.exitCode ?? child.signalCode ?? "?"}) before it was ready: ${lastLines(this.tail)}`, { hint: `see ${this.logFile}; run \`npm run build\` if dist/ is missing` });
      }
      try {
        const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) });
        await res.arrayBuffer();
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new ProofError("PROOF_CP_START_FAILED", `autonomy serve did not answer /readyz 200 within ${Math.round((this.o.readyTimeoutMs ?? 60_000) / 1000)} s: ${lastLines(this.tail)}`, { hint: `see ${this.logFile}` });
      }
      await sleep(50);
    }
  }

  private async readToken(): Promise<string> {
    try {
      const t = (await readFile(this.tokenFile, "utf8")).trim();
      if (t !== "") return t;
    } catch (e) {
      if (this.o.fallbackToken === undefined) {
        throw new ProofError("PROOF_NO_OWNER_TOKEN", `the control plane did not bootstrap an owner token (the database already had one): ${messageOf(e)}`, {
          hint: "use an empty database, or set AUTONOMY_TOKEN to an owner token of this one",
        });
      }
    }
    return this.o.fallbackToken ?? "";
  }

  async stop(signal: "SIGTERM" | "SIGKILL"): Promise<{ code: number | null; signal: string | null }> {
    const child = this.child;
    if (!child || !this.running) return this.exited;
    child.kill(signal);
    // A SIGTERM that does not end it within 30 s is followed by a SIGKILL: stop() always returns.
    const timer = signal === "SIGTERM" ? setTimeout(() => child.kill("SIGKILL"), 30_000) : undefined;
    try {
      return await this.exited;
    } finally {
      if (timer) clearTimeout(timer);
    }
  }

  async dispose(): Promise<void> {
    if (this.running) await this.stop("SIGKILL");
    await new Promise<void>((resolve) => this.log.end(() => resolve()));
  }
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-3).join(" | ") || "(no output)";
}

/** Starts `autonomy serve` on `db` and waits until /readyz answers 200. */
export async function launchControlPlane(o: LaunchOptions): Promise<LaunchedControlPlane> {
  const cp = new ServeChild(o);
  try {
    await cp.start();
  } catch (e) {
    await cp.dispose();
    throw e;
  }
  return cp;
}
