import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { resolve } from "node:path";
import { DEFAULT_CONTROL_SOCKET, parseMetricsAddress, startEdgeDaemon, untilStopped } from "../../edge/index.js";
import type { EdgeConfigLoader, RelayPartsFactory, ReleaseRelay } from "../../edge/index.js";
import { UsageError } from "../../lib/index.js";
import { createLogger } from "../../observability/index.js";
import { action } from "../run.js";

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
      // untilStopped's handlers are in place (removing the last listener drops a signal still queued for it),
      // and a signal that came early is sent again to them.
      const early: NodeJS.Signals[] = [];
      const onTerm = (): void => void early.push("SIGTERM");
      const onInt = (): void => void early.push("SIGINT");
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
        throw e;
      }
      const stopped = untilStopped(daemon, log);
      unhold();
      if (early[0] !== undefined) process.kill(process.pid, early[0]);
      await stopped;
    }));
}
