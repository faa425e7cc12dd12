import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { resolve } from "node:path";
import { DEFAULT_CONTROL_SOCKET, EdgeError, parseMetricsAddress, startEdgeDaemon, untilStopped } from "../../edge/index.js";
import type { EdgeConfigLoader, RelayPartsFactory, ReleaseRelay } from "../../edge/index.js";
import { ExitCodes, UsageError } from "../../lib/index.js";
import { createLogger } from "../../observability/index.js";
import { action, exitAfter } from "../run.js";

/** How long a start interrupted by SIGTERM/SIGINT may still take before edged leaves without it. */
const STARTUP_STOP_MS = 3_000;

/** What `edged run` composes: the config loader and the relay's parts (tests pass their own). */
export interface EdgedRunDeps {
  loadConfig: EdgeConfigLoader;
  parts: RelayPartsFactory;
  /** The release relay ("seed once, update everywhere"); absent = no release is relayed or activated. */
  release?: ReleaseRelay;
}

interface RunFlags {
  config?: string;
  controlSocket: string;
  prometheusAddr?: string;
  logLevel: "debug" | "info" | "warn" | "error";
}

/** `--prometheus-addr`: refused at parse time (usage, exit 2) when it does not parse; the daemon parses it again. */
function metricsAddr(v: string): string {
  try {
    parseMetricsAddress(v);
  } catch (e) {
    throw new InvalidArgumentError(e instanceof Error ? e.message.replace(/^--prometheus-addr \S+: /, "") : String(e));
  }
  return v;
}

/** `edged run`: the relay and the control socket, until SIGTERM/SIGINT (exit 0); SIGHUP reloads edge.toml. */
export function registerEdgedRun(program: Command, deps: () => Promise<EdgedRunDeps>): void {
  program.command("run")
    .description("run the relay (receiver, executor, bandwidth) and serve the control socket until SIGTERM; SIGHUP or an edit of edge.toml reloads it")
    .option("--control-socket <path>", "the control socket edgectl talks to (mode 0600)", DEFAULT_CONTROL_SOCKET)
    .option("--prometheus-addr <addr>", "serve Prometheus metrics (unauthenticated) at http://ADDR/metrics, off when absent or empty: PORT or :PORT binds 127.0.0.1 only; another interface must be explicit (0.0.0.0:PORT, IP:PORT, [IPv6]:PORT) and is logged as a warning", metricsAddr)
    .option("--json", "a failure to start is printed as a JSON document on stdout (the log is JSON lines on stderr either way)")
    .addOption(new Option("--log-level <level>", "lowest level logged (JSON lines on stderr)").choices(["debug", "info", "warn", "error"]).default("info"))
    .action(action(async (flags: RunFlags, cmd: Command) => {
      const configPath = cmd.optsWithGlobals<{ config?: string }>().config;
      if (configPath === undefined) throw new UsageError("edged run needs --config edge.toml", "pass --config PATH (before or after `run`)");
      const { loadConfig, parts, release } = await deps();
      const config = await loadConfig(resolve(configPath));
      const log = createLogger({ name: "autonomy.edged", level: flags.logLevel });
      // edged logs `edged_started` before untilStopped installs its handlers: a SIGTERM in that window (a
      // supervisor reacting to the line on a loaded machine) would kill it by the default disposition, skipping
      // the graceful stop. Hold SIGTERM/SIGINT from before the start; the holders are removed only once
      // untilStopped's handlers are in place (removing the last listener drops a signal still queued for it).
      // A signal during the start means "do not run": once the start ends edged stops again (STARTUP_INTERRUPTED);
      // a start that does not end within STARTUP_STOP_MS (a hung path) is left, with the same message, exit 1.
      let early: NodeJS.Signals | undefined;
      let cancelExit: (() => void) | undefined;
      const interrupted = (sig: NodeJS.Signals): EdgeError => new EdgeError("STARTUP_INTERRUPTED", `${sig} during start-up: edged stopped before it served anything`);
      const hold = (sig: NodeJS.Signals) => (): void => {
        if (early !== undefined) return;
        early = sig;
        log.warn({ event: "signal_during_startup", signal: sig }, `${sig} during start-up: stopping once the start ends`);
        cancelExit = exitAfter(STARTUP_STOP_MS, ExitCodes.failure, () => {
          const e = interrupted(sig);
          process.stderr.write(`error: ${e.message}; the start did not end within ${STARTUP_STOP_MS} ms\nhint: ${e.hint}\n`);
        });
      };
      const onTerm = hold("SIGTERM");
      const onInt = hold("SIGINT");
      process.on("SIGTERM", onTerm).on("SIGINT", onInt);
      const unhold = (): void => void process.off("SIGTERM", onTerm).off("SIGINT", onInt);
      let daemon: Awaited<ReturnType<typeof startEdgeDaemon>>;
      try {
        daemon = await startEdgeDaemon(config, {
          controlSocket: resolve(flags.controlSocket),
          ...(flags.prometheusAddr === undefined ? {} : { prometheusAddr: flags.prometheusAddr }),
          log, parts, loadConfig, ...(release ? { release } : {}),
        });
      } catch (e) {
        unhold();
        cancelExit?.();
        throw e;
      }
      if (early !== undefined) {
        await daemon.stop();
        unhold();
        cancelExit?.();
        throw interrupted(early);
      }
      const stopped = untilStopped(daemon, log);
      unhold();
      await stopped;
    }));
}
