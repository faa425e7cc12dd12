import { watch } from "node:fs";
import type { FSWatcher } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { acquireFileLock, errnoCode, messageOf, systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { createLogger } from "../../observability/index.js";
import type { Logger } from "../../observability/index.js";
import { stateRootPaths } from "../../node/index.js";
import type { EdgeConfig } from "../config/schema.js";
import { EdgeError } from "../errors.js";
import { createControlServer } from "./control-server.js";
import { listenControlSocket } from "./control-socket.js";
import { trustedSocketPath } from "./socket-trust.js";
import { registerBootMetrics } from "./boot-status.js";
import { createEdgeMetrics } from "./metrics.js";
import { listenFailure } from "./listen-errors.js";
import { parseMetricsAddress, serveMetrics } from "./prometheus.js";
import type { EdgeConfigLoader, RelayParts, RelayPartsFactory } from "./ports.js";
import type { InboxStatus } from "./control-types.js";
import { DaemonRelayControl, inboxStatusOf } from "./relay-control.js";
import { startReleaseHooks } from "./release-hooks.js";
import type { ReleaseRelay } from "./release-hooks.js";
import { RunningConfig } from "./running-config.js";
import type { ReloadOutcome } from "./running-config.js";

/** Options of {@link startEdgeDaemon}. */
export interface EdgeDaemonOptions {
  /** The control socket to serve (`--control-socket`). */
  controlSocket: string;
  /**
   * The Prometheus endpoint (`--prometheus-addr`, parsed by parseMetricsAddress): a bare PORT binds
   * loopback; another interface must be an explicit IP and is logged as a warning. Off when absent or "".
   */
  prometheusAddr?: string;
  clock?: Clock;
  log?: Logger;
  /** Opens the relay's parts (store, bandwidth, ledger + executor, receiver + transport). */
  parts: RelayPartsFactory;
  /** Re-reads edge.toml on reload (`loadEdgeConfig`). */
  loadConfig: EdgeConfigLoader;
  /** The release relay (src/edge/release-relay.ts); without it no release is relayed or activated. */
  release?: ReleaseRelay;
  /** Reload when edge.toml changes on disk (besides SIGHUP). Default true. */
  watchConfig?: boolean;
  /** How long in-flight pushes may finish on stop before they are aborted (back to scheduled). Default 5 s. */
  stopGraceMs?: number;
}

/** A running edged. */
export interface EdgeDaemon {
  readonly controlSocket: string;
  /** The bound Prometheus address, when served. */
  readonly metricsAddress: string | undefined;
  readonly receiverAddress: string | undefined;
  /** What SIGHUP does: re-read edge.toml (bandwidth at once; other changes reported as needing a restart). */
  reload(): Promise<ReloadOutcome>;
  /** Stops accepting, finishes or aborts in-flight pushes (nothing lost), closes the ledger, frees the state root. Idempotent. */
  stop(): Promise<void>;
}

/** Debounce of file-watch events: editors write a file in several steps (truncate, write, rename). */
const WATCH_DEBOUNCE_MS = 150;

/**
 * The composition root of edged: takes the state root's daemon lock
 * (DAEMON_ALREADY_RUNNING when another edged holds it), opens the relay's
 * parts, serves the control socket and the Prometheus endpoint, starts the
 * relay and watches edge.toml. Every lifecycle step is one log line.
 *
 * ### Examples
 * ```ts
 * const d = await startEdgeDaemon(config, { controlSocket: "/run/edged/ctl.sock", parts, loadConfig: loadEdgeConfig });
 * process.on("SIGHUP", () => void d.reload());
 * ```
 */
export async function startEdgeDaemon(config: EdgeConfig, opts: EdgeDaemonOptions): Promise<EdgeDaemon> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? createLogger({ name: "autonomy.edged" });
  // Before anything is opened: an address that does not parse fails the start at once.
  const metricsAt = opts.prometheusAddr === undefined ? undefined : parseMetricsAddress(opts.prometheusAddr);
  await requireStateRoot(config.node.stateRoot);
  const paths = stateRootPaths(config.node.stateRoot);
  await mkdir(dirname(paths.edgeDaemonLock), { recursive: true, mode: 0o700 });
  const unlock = await acquireFileLock(paths.edgeDaemonLock, {
    timeoutMs: 0,
    clock,
    onTimeout: (pid) => new EdgeError("DAEMON_ALREADY_RUNNING", `another edged${pid === undefined ? "" : ` (pid ${pid})`} holds the state root ${config.node.stateRoot}`),
  });
  const cleanup: (() => Promise<void>)[] = [unlock];
  const unwind = async (): Promise<void> => {
    for (const f of cleanup.reverse()) await f().catch((e: unknown) => log.error({ err: e }, "edged shutdown step failed"));
    cleanup.length = 0;
  };
  try {
    log.info({ event: "edged_starting", node_id: config.node.id, state_root: config.node.stateRoot, config: config.source }, "edged starting");
    const parts = await opts.parts(config, { clock, log });
    cleanup.push(() => parts.close());
    const running = new RunningConfig(config, { bandwidth: parts.bandwidth, load: opts.loadConfig, clock, log, changed: () => parts.engine.bandwidthChanged() });
    // The inbox consumer starts with the relay, after the control socket: until then the ledger's own record is shown.
    let inboxStatus = (): InboxStatus => inboxStatusOf(parts);
    const inboxView = (): InboxStatus => inboxStatus();
    const app = await createControlServer({ control: new DaemonRelayControl(parts, running, clock, inboxView), maxSegmentBytes: config.relay.maxSegmentBytes, log });
    const unlinkSocket = await listenControlSocket(app, opts.controlSocket);
    // Stops accepting first: no enqueue can race the engine's stop.
    cleanup.push(async () => {
      await app.close();
      await unlinkSocket();
    });
    log.info({ event: "control_socket_listening", socket: opts.controlSocket }, "control socket listening");
    // The check edgectl makes before it connects (as this user): say now, not at the operator's first command.
    await trustedSocketPath(opts.controlSocket).catch((e: unknown) =>
      log.warn({ event: "control_socket_untrusted", socket: opts.controlSocket, reason: messageOf(e) }, "edgectl will refuse this control socket (CONTROL_SOCKET_UNTRUSTED): put it in a directory only edged's user can write, e.g. the default /run/edged"));
    let metricsAddress: string | undefined;
    if (metricsAt !== undefined) {
      const registry = createEdgeMetrics(parts, running, inboxView);
      registerBootMetrics(registry, () => running.current.node.stateRoot);
      const metrics = await serveMetrics(registry, metricsAt).catch((e: unknown) => {
        throw listenFailure(e, "--prometheus-addr", opts.prometheusAddr ?? "");
      });
      metricsAddress = metrics.address;
      cleanup.push(metrics.close);
      log.info({ event: "metrics_listening", address: metrics.address, loopback: metricsAt.loopback }, "Prometheus metrics listening");
      if (!metricsAt.loopback) {
        log.warn({ event: "metrics_exposed", address: metrics.address }, "Prometheus metrics are served WITHOUT authentication on a non-loopback address: anyone who can reach it reads the relay's peers and counters; restrict it with a firewall, or bind 127.0.0.1");
      }
    }
    if (config.relay.enabled) {
      cleanup.push(() => stopEngine(parts, opts.stopGraceMs ?? 5_000, log));
      // Awaited: deliveries owed to peers no longer configured are settled before edged reports started.
      await parts.engine.start();
      log.info({ event: "relay_started", peers: config.peers.map((p) => p.id), receiver: parts.receiverAddress ?? null }, "relay started");
      if (opts.release && parts.inbox) {
        const hooks = startReleaseHooks({ config, engine: parts.engine, inbox: parts.inbox, store: parts.store, release: opts.release, log });
        inboxStatus = () => {
          const r = hooks.rejections();
          return { rejected: r.entries, rejected_counts: r.counts };
        };
        // Stopped before the engine: no release is enqueued into a stopping relay.
        cleanup.push(() => hooks.stop());
        log.info({ event: "release_relay_started", relay_activated_release: config.relay.relayActivatedRelease, activate_relayed_releases: config.relay.activateRelayedReleases }, "release relay started");
      }
    } else {
      log.info({ event: "relay_disabled" }, "relay disabled ([relay] enabled = false)");
    }
    const reload = coalesced((reason: "sighup" | "file_watch") => running.reload(reason));
    if (opts.watchConfig !== false) {
      const w = watchFile(config.source, () => void reload("file_watch"));
      cleanup.push(() => Promise.resolve(w.close()));
    }
    log.info({ event: "edged_started" }, "edged started");
    let stopping: Promise<void> | undefined;
    return {
      controlSocket: opts.controlSocket,
      metricsAddress,
      receiverAddress: parts.receiverAddress,
      reload: () => reload("sighup"),
      stop: () => {
        stopping ??= (async () => {
          log.info({ event: "edged_stopping" }, "edged stopping");
          await unwind();
          log.info({ event: "edged_stopped" }, "edged stopped");
        })();
        return stopping;
      },
    };
  } catch (e) {
    await unwind();
    throw e;
  }
}

/**
 * The state root must already exist: creating it would turn a typo in
 * [node] state_root into an empty node that relays nothing it owed (precheck
 * refuses a missing one the same way). Its subdirectories are edged's to create.
 */
async function requireStateRoot(root: string): Promise<void> {
  const st = await stat(root).catch((e: unknown) => {
    if (errnoCode(e) === "ENOENT") {
      throw new EdgeError("STATE_ROOT_INVALID", `[node] state_root ${root} does not exist; edged does not create it (a typo would start an empty node)`, {
        hint: "check [node] state_root in edge.toml; on a new node create it (mkdir -p, owned by edged's user) and run `edged precheck --config edge.toml` first",
      });
    }
    throw new EdgeError("STATE_ROOT_INVALID", `[node] state_root ${root} cannot be read: ${messageOf(e)}`, { cause: e });
  });
  if (!st.isDirectory()) throw new EdgeError("STATE_ROOT_INVALID", `[node] state_root ${root} is not a directory`);
}

async function stopEngine(parts: RelayParts, graceMs: number, log: Logger): Promise<void> {
  await parts.engine.stop(graceMs);
  log.info({ event: "relay_stopped" }, "relay stopped; in-flight deliveries finished or rescheduled");
}

interface Pending<A, R> {
  arg: A;
  promise: Promise<R>;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

/**
 * Runs one reload at a time, and at most one more after it: every request
 * during a reload joins that one pending reload (its argument the latest, and
 * it reads the file after all of them, so the latest file wins). A storm of
 * SIGHUPs costs two reads, not one per signal (a queue before: 300 signals,
 * 300 sequential reads).
 */
export function coalesced<A, R>(fn: (a: A) => Promise<R>): (a: A) => Promise<R> {
  let busy = false;
  let pending: Pending<A, R> | undefined;
  const start = (a: A): Promise<R> => {
    busy = true;
    const p = Promise.resolve().then(() => fn(a));
    const after = (): void => {
      const q = pending;
      pending = undefined;
      if (q === undefined) busy = false;
      else start(q.arg).then(q.resolve, q.reject);
    };
    p.then(after, after);
    return p;
  };
  return (a: A) => {
    if (!busy) return start(a);
    if (pending !== undefined) {
      pending.arg = a;
      return pending.promise;
    }
    let resolve: (r: R) => void = () => undefined;
    let reject: (e: unknown) => void = () => undefined;
    const promise = new Promise<R>((res, rej) => { resolve = res; reject = rej; });
    pending = { arg: a, promise, resolve, reject };
    return promise;
  };
}

/**
 * Watches the file's DIRECTORY (an editor or `mv` replaces the file, which
 * ends a watch on the file itself) and calls `onChange` once per burst of
 * events naming it.
 */
function watchFile(path: string, onChange: () => void): FSWatcher {
  const name = basename(path);
  let timer: NodeJS.Timeout | undefined;
  const w = watch(dirname(path), { persistent: false }, (_event, filename) => {
    if (filename !== null && filename.toString() !== name) return;
    clearTimeout(timer);
    timer = setTimeout(onChange, WATCH_DEBOUNCE_MS);
  });
  w.on("close", () => clearTimeout(timer));
  return w;
}
