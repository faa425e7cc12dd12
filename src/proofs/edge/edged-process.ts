/**
 * A real `edged run` child process for the relay labs: the built launcher
 * (bin/edged.js over dist/), its control socket in the lab folder, its JSON
 * log on stderr into `edged.log`. It can be SIGTERMed, SIGKILLed, SIGHUPed
 * and started again on the same config and state root. Every child still
 * running when this process exits is SIGKILLed (none outlives a crashed run).
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import type { WriteStream } from "node:fs";
import { fileURLToPath } from "node:url";
import { ProofError } from "../errors.js";
import { LabCtl } from "./ctl.js";

/** The `edged` launcher the package installs (src/proofs/edge/ and dist/proofs/edge/ both sit three levels down). */
export const EDGED_BIN = fileURLToPath(new URL("../../../bin/edged.js", import.meta.url));

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

export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

export class EdgedProcess {
  readonly ctl: LabCtl;
  pid = 0;
  private child: ChildProcess | undefined;
  private exited: Promise<ExitInfo> = Promise.resolve({ code: null, signal: null });
  private tail = "";
  private readonly log: WriteStream;

  constructor(readonly id: string, readonly configPath: string, readonly socketPath: string, readonly logFile: string, private readonly readyTimeoutMs = 30_000) {
    this.ctl = new LabCtl(socketPath);
    this.log = createWriteStream(logFile, { flags: "a" });
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts edged and resolves once its control socket answers a status request. */
  async start(): Promise<void> {
    if (this.running) throw new ProofError("PROOF_EDGED_START_FAILED", `edged ${this.id} is already running (pid ${this.pid})`, { hint: "stop() it first" });
    this.tail = "";
    const args = [EDGED_BIN, "--config", this.configPath, "run", "--control-socket", this.socketPath, "--log-level", "info"];
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    track(child);
    this.child = child;
    this.pid = child.pid ?? 0;
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
    child.stderr?.on("data", (d: Buffer) => {
      this.log.write(d);
      this.tail = (this.tail + d.toString("utf8")).slice(-4000);
    });
    const deadline = Date.now() + this.readyTimeoutMs;
    for (;;) {
      if (!this.running) throw new ProofError("PROOF_EDGED_START_FAILED", `edged ${this.id} exited (${child.exitCode ?? child.signalCode ?? "?"}) before its control socket answered: ${lastLines(this.tail)}`, { hint: `see ${this.logFile}; run \`npm run build\` if dist/ is missing` });
      try {
        await this.ctl.status();
        return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new ProofError("PROOF_EDGED_START_FAILED", `edged ${this.id} did not answer on ${this.socketPath} within ${this.readyTimeoutMs} ms: ${lastLines(this.tail)}`, { hint: `see ${this.logFile}` });
      }
      await sleep(50);
    }
  }

  /** Signals edged and waits for it to exit (a SIGTERM not obeyed within 30 s is followed by SIGKILL). */
  async stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<ExitInfo> {
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

  /** SIGHUP: edged reloads edge.toml in place. */
  hup(): void {
    if (this.running) this.child?.kill("SIGHUP");
  }

  async dispose(): Promise<void> {
    if (this.running) await this.stop("SIGKILL");
    await new Promise<void>((resolve) => this.log.end(() => resolve()));
  }
}

function lastLines(text: string): string {
  return text.trim().split("\n").slice(-3).join(" | ") || "(no output)";
}
