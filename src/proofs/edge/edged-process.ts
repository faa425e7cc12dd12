/**
 * A real `edged run` child process for the relay labs: the built launcher
 * (bin/edged.js over dist/), its control socket in the lab folder, its JSON
 * log on stderr into `edged.log`. It can be SIGTERMed, SIGKILLed, SIGHUPed
 * and started again on the same config and state root (the launching,
 * readiness wait and stopping are {@link ProofChild}'s, shared with
 * `autonomy serve`).
 */
import { fileURLToPath } from "node:url";
import { ProofChild } from "../child-process.js";
import type { ExitInfo } from "../child-process.js";
import { LabCtl } from "./ctl.js";

/** The `edged` launcher the package installs (src/proofs/edge/ and dist/proofs/edge/ both sit three levels down). */
export const EDGED_BIN = fileURLToPath(new URL("../../../bin/edged.js", import.meta.url));

export class EdgedProcess {
  readonly ctl: LabCtl;
  private readonly proc: ProofChild;

  constructor(readonly id: string, readonly configPath: string, readonly socketPath: string, readonly logFile: string, readyTimeoutMs = 30_000) {
    const ctl = new LabCtl(socketPath);
    this.ctl = ctl;
    this.proc = new ProofChild({
      name: `edged ${id}`,
      args: [EDGED_BIN, "--config", configPath, "run", "--control-socket", socketPath, "--log-level", "info"],
      logFile,
      // Ready once its control socket answers a status request.
      probe: async () => {
        await ctl.status();
        return true;
      },
      readyTimeoutMs,
      errorCode: "PROOF_EDGED_START_FAILED",
      readyMeans: "its control socket answered",
      timeoutMeans: `answer on ${socketPath} within ${readyTimeoutMs} ms`,
    });
  }

  /** The pid of the current child (changes at every start). */
  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.running;
  }

  /** Starts edged and resolves once its control socket answers a status request. */
  start(): Promise<void> {
    return this.proc.start();
  }

  /** Signals edged and waits for it to exit (a SIGTERM not obeyed within 30 s is followed by SIGKILL). */
  stop(signal: "SIGTERM" | "SIGKILL" = "SIGTERM"): Promise<ExitInfo> {
    return this.proc.stop(signal);
  }

  /** SIGHUP: edged reloads edge.toml in place. */
  hup(): void {
    this.proc.signal("SIGHUP");
  }

  dispose(): Promise<void> {
    return this.proc.dispose();
  }
}
