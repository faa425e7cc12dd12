import type { Logger } from "../../observability/index.js";
import type { EdgeDaemon } from "./daemon.js";

/** The part of `process` the signal loop uses (a test passes an EventEmitter). */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: () => void): unknown;
  off(event: NodeJS.Signals, listener: () => void): unknown;
}

/**
 * Runs a started edged until SIGTERM or SIGINT: SIGHUP re-reads edge.toml;
 * SIGTERM/SIGINT stop it (in-flight pushes finish or go back to scheduled,
 * the ledger is closed) and resolve with the signal. A second SIGTERM while
 * stopping changes nothing: the stop already under way is what ends it.
 */
export function untilStopped(daemon: EdgeDaemon, log: Logger, source: SignalSource = process): Promise<NodeJS.Signals> {
  return new Promise((resolve, reject) => {
    const onHup = (): void => {
      log.info({ event: "sighup" }, "SIGHUP: reloading edge.toml");
      void daemon.reload();
    };
    const stopOn = (signal: NodeJS.Signals) => (): void => {
      log.info({ event: "signal", signal }, `${signal}: stopping`);
      daemon.stop().then(() => {
        source.off("SIGHUP", onHup);
        source.off("SIGTERM", onTerm);
        source.off("SIGINT", onInt);
        resolve(signal);
      }, reject);
    };
    const onTerm = stopOn("SIGTERM");
    const onInt = stopOn("SIGINT");
    source.on("SIGHUP", onHup);
    source.on("SIGTERM", onTerm);
    source.on("SIGINT", onInt);
  });
}
