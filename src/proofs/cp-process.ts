/**
 * A real `autonomy serve` child process for the proof suites: the built CLI
 * (bin/autonomy.js over dist/), on 127.0.0.1 and a free port, its owner token
 * from `--bootstrap-token-file`. It can be SIGTERMed or SIGKILLed and started
 * again on the same database and the same port (the suites that prove
 * recovery need exactly that). Its stderr goes to `serve.log` in the work
 * directory, with every token secret masked.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freeLoopbackPort, messageOf } from "../lib/index.js";
import { ProofChild } from "./child-process.js";
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

/** Token secrets look like `aop_<id>_<secret>` (operator), `aon_…` (node), `aoe_…` (enrollment): keep the id, mask the secret. */
export function maskTokens(text: string): string {
  return text.replace(/\b(ao[pne]_[A-Za-z0-9]+_)[A-Za-z0-9_-]+/g, "$1<masked>");
}


class ServeChild implements LaunchedControlPlane {
  readonly url: string;
  ownerToken = "";
  readonly logFile: string;
  private readonly tokenFile: string;
  private readonly proc: ProofChild;

  constructor(private readonly o: LaunchOptions, port: number) {
    this.url = `http://127.0.0.1:${port}`;
    this.logFile = join(o.workDir, "serve.log");
    this.tokenFile = join(o.workDir, "owner.token");
    const readyTimeoutMs = o.readyTimeoutMs ?? 60_000;
    this.proc = new ProofChild({
      name: "autonomy serve",
      // --exit-with-stdin + exitWithStdin: the server ends when this process dies, even by SIGKILL (no orphan).
      args: [AUTONOMY_BIN, "serve", "--listen", `127.0.0.1:${port}`, "--json", "--exit-with-stdin", "--bootstrap-token-file", this.tokenFile, ...(o.args ?? [])],
      // The store location goes through the environment (AUTONOMY_DB), never argv: a postgres:// URL may carry a
      // password, and argv is readable by every local user (ps, /proc/<pid>/cmdline); /proc/<pid>/environ is not.
      env: { ...process.env, AUTONOMY_DB: o.db },
      exitWithStdin: true,
      logFile: this.logFile,
      redact: maskTokens,
      probe: () => this.answersReady(),
      readyTimeoutMs,
      errorCode: "PROOF_CP_START_FAILED",
      readyMeans: "it was ready",
      timeoutMeans: `answer /readyz 200 within ${Math.round(readyTimeoutMs / 1000)} s`,
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.running;
  }

  async start(): Promise<void> {
    await this.proc.start();
    this.ownerToken = await this.readToken();
  }

  private async answersReady(): Promise<boolean> {
    const res = await fetch(`${this.url}/readyz`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200;
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

  stop(signal: "SIGTERM" | "SIGKILL"): Promise<{ code: number | null; signal: string | null }> {
    return this.proc.stop(signal);
  }

  dispose(): Promise<void> {
    return this.proc.dispose();
  }
}

/** Starts `autonomy serve` on `db` and waits until /readyz answers 200. */
export async function launchControlPlane(o: LaunchOptions): Promise<LaunchedControlPlane> {
  // The port is chosen once: a restart serves on the same URL (the suites that prove recovery need exactly that).
  const cp = new ServeChild(o, await freeLoopbackPort());
  try {
    await cp.start();
  } catch (e) {
    await cp.dispose();
    throw e;
  }
  return cp;
}
