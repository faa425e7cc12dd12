import type { FastifyInstance } from "fastify";
import { readFile } from "node:fs/promises";
import { createSecureContext } from "node:tls";
import { LivePolicy, TokenVerifier, nodeWalLocation, readControlPlane } from "../node/index.js";
import type { LivePolicyEvent } from "../node/index.js";
import type { RuntimeConfig } from "./config.js";
import { hostname } from "node:os";
import { Exporter, LiveWal, confirmedPos, sinkFor } from "../telemetry/index.js";
import type { ExporterLogger } from "../telemetry/index.js";
import { createLogger } from "../observability/index.js";
import { isoTime, redactUrl, systemClock } from "../lib/index.js";
import type { Clock, Rng } from "../lib/index.js";
import type { RepositoryOptions } from "../oci/index.js";
import { ReleasePoller } from "./poller/poller.js";
import { checkTransport, ensureEnrolled, sameServer } from "./poller/enroll.js";
import type { Enrollment } from "./poller/enroll.js";
import { WalDecisionSink } from "./wal-sink.js";
import { createToolServer } from "./http-server.js";
import { Interceptor } from "./interceptor.js";
import { serveMcpStdio } from "./mcp-server.js";
import { builtinTools, toolRegistry } from "./tools/index.js";
import { connectUpstreams } from "./upstream.js";
import { checkListenAddress, listenTcp, listenUnix } from "./listen.js";
import type { ListenAddress } from "./listen.js";
import { RuntimeError } from "./errors.js";
import type { DecisionSink } from "./types.js";

export interface StartRuntimeOptions {
  stateRoot: string;
  config: RuntimeConfig;
  /**
   * Where to serve HTTP (`POST /v1/tool`, `/mcp`, health): `{host, port}` (port
   * 0 picks a free one) or a unix socket `{path, mode?}`. An address outside
   * loopback is refused unless TLS is configured and a token exists.
   */
  listen?: ListenAddress;
  /** Also serve MCP on this process's stdin/stdout. */
  stdio?: boolean;
  sink?: DecisionSink;
  onPolicyEvent?: (e: LivePolicyEvent) => void;
  pollMs?: number;
  /** How often the runtime's exporter looks for new entries once caught up (default 500 ms). */
  exporterPollMs?: number;
  /** The clock of decision and lifecycle events and the exporter. Default {@link systemClock}. */
  clock?: Clock;
  /**
   * Follow a control plane (`runtime start --server URL`): enroll on the first
   * start (or reuse `control-plane.json`), heartbeat, and poll for releases,
   * activating new ones through the same path as `runtime activate`. Needs
   * the runtime's own WAL (no `sink`): the lifecycle phases are written to it.
   */
  controlPlane?: ControlPlaneOptions;
}

export interface ControlPlaneOptions {
  server: string;
  enrollToken?: string;
  nodeId?: string;
  /** Release channel to follow (default `stable`). */
  channel?: string;
  pollIntervalMs?: number;
  /** Per-request deadline of control-plane calls (default 10 s). */
  timeoutMs?: number;
  /** Allow http:// to a control plane off loopback (the token and credential in clear text); default refused (CP_PLAIN_HTTP_REFUSED). */
  plainHttp?: boolean;
  /** PEM of the private CA that issued the control plane's certificate. */
  ca?: string;
  repositoryOptions?: RepositoryOptions;
  /** Jitter source (seeded in tests). */
  random?: Rng;
  /**
   * Drain the WAL to this control plane's `POST /v1/events` with the node
   * credential (default true; `runtime start --no-export-events` turns it off).
   * `[telemetry] control_plane_url` in the config sends them elsewhere (the
   * credential only ever goes to the server it was issued by).
   */
  exportEvents?: boolean;
}

export interface RunningRuntime {
  interceptor: Interceptor;
  policy: LivePolicy;
  server?: FastifyInstance;
  /** `http://host:port` (`https://` with TLS), or `unix:/path`, when HTTP is served. */
  url?: string;
  /** When HTTP is served: where the bearer tokens are read from and how many are usable now (0: every call is refused). */
  auth?: { tokensPath: string; activeTokens: number };
  /** The runtime's own exporter, when `telemetry.otlp_url` / `control_plane_url` is configured. */
  exporter?: Exporter;
  /** With `controlPlane`: the node's id there, whether this start enrolled it, and the release poller. */
  controlPlane?: { nodeId: string; enrolled: boolean; poller: ReleasePoller };
  close(): Promise<void>;
}

/**
 * The composition root of a node's runtime: the live policy from the state
 * root, the interceptor, built-in and upstream tools, and the transports
 * (HTTP + MCP Streamable HTTP, optionally MCP stdio). Decision events go to
 * the telemetry WAL in `{state_root}/telemetry/wal`; a WAL that fails recovery
 * stops the runtime from starting (exit 5), as seed 001 requires.
 */
export async function startRuntime(opts: StartRuntimeOptions): Promise<RunningRuntime> {
  if (opts.controlPlane && opts.sink) throw new Error("startRuntime: controlPlane needs the runtime's own WAL; do not pass a sink");
  // Enrolled (or the stored enrollment read) before anything is opened: a refused token stops the start cleanly.
  const cp = opts.controlPlane;
  const enrollment = cp
    ? await ensureEnrolled({
      stateRoot: opts.stateRoot, server: cp.server,
      ...(cp.enrollToken !== undefined ? { enrollToken: cp.enrollToken } : {}), ...(cp.nodeId !== undefined ? { nodeId: cp.nodeId } : {}),
      ...(cp.timeoutMs !== undefined ? { timeoutMs: cp.timeoutMs } : {}), ...(opts.clock ? { clock: opts.clock } : {}),
      ...(cp.plainHttp === true ? { plainHttp: true } : {}), ...(cp.ca !== undefined ? { ca: cp.ca } : {}),
    })
    : undefined;
  // A listener the runtime would refuse is refused before anything is opened or logged.
  const auth = new TokenVerifier(opts.stateRoot);
  const activeTokens = opts.listen ? await auth.activeCount() : 0;
  const tls = opts.listen ? await readTls(opts.config) : undefined;
  if (opts.listen) checkListenAddress(opts.listen, { tls: tls !== undefined, activeTokens });
  const policy = new LivePolicy(opts.stateRoot, { ...(opts.onPolicyEvent ? { onEvent: opts.onPolicyEvent } : {}), ...(opts.pollMs ? { pollMs: opts.pollMs } : {}) });
  await policy.start();
  // Everything opened is closed in reverse order, on close() or when start-up fails half way.
  const closers: (() => Promise<void> | void)[] = [() => policy.stop()];
  const closeAll = async (): Promise<void> => {
    for (const c of closers.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  try {
    let sink = opts.sink;
    let exporter: Exporter | undefined;
    let telemetry: (() => Record<string, unknown>) | undefined;
    let cpPoller: ReleasePoller | undefined;
    if (!sink) {
      // The node says where its WAL is and what counts as its steady state (src/node).
      const { dir: walDir, otherState } = nodeWalLocation(opts.stateRoot);
      const t = opts.config.telemetry;
      // Sealed segments are reclaimed once the exporter (ours, or `autonomy telemetry drain`) has confirmed them.
      // LiveWal: after a failed write (disk full) the WAL reopens itself with backoff; an unattended node resumes alone.
      const wal = await LiveWal.open(walDir, { otherState, confirmed: () => confirmedPos(walDir), ...(t.segmentBytes !== undefined ? { segmentBytes: t.segmentBytes } : {}) });
      const recovered = wal.current.recovered;
      // With --server: decisions and tool results name the control plane's release the node runs (null until known).
      const stamp = (): Record<string, unknown> | undefined => {
        const c = cpPoller?.current();
        return c ? { release_id: c.release_id, ...(c.lock_fingerprint !== null ? { lock_fingerprint: c.lock_fingerprint } : {}) } : undefined;
      };
      const walSink = new WalDecisionSink(wal, opts.config.decisionLog, { toolResults: true, stamp });
      await wal.append(lifecycleEvent("runtime_started", opts, policy, { wal_recovery: { mode: recovered.mode, last_seq: recovered.scan.maxSeq, phantoms_discarded: recovered.scan.phantoms } }));
      closers.push(async () => {
        await walSink.flush();
        await wal.append(lifecycleEvent("runtime_stopped", opts, policy, { decision_log_failures: walSink.failures })).catch(() => undefined);
        await wal.close();
      });
      sink = walSink;
      if (enrollment && opts.controlPlane) cpPoller = startPoller(opts, opts.controlPlane, enrollment, wal, closers);
      const exporting = startExporter(opts, wal, await eventsDestination(opts, enrollment));
      if (exporting) closers.push(exporting.stop);
      exporter = exporting?.exporter;
      telemetry = () => ({
        wal: { dir: wal.dir, state: wal.state, reopens: wal.reopens, generation: wal.current.generation, seed_exact: wal.current.seedExact, last_seq: wal.lastSeq, base: wal.base, sealed_segments: wal.sealedSegments.length, decision_log: opts.config.decisionLog, decision_log_failures: walSink.failures },
        exporter: exporting ? exporting.exporter.status() : null,
        // The release poller (`--server`): never the node credential, the URL redacted.
        ...(cpPoller && enrollment ? { control_plane: { server: redactUrl(enrollment.file.server), node_id: enrollment.nodeId, ...cpPoller.status() } } : {}),
      });
    }
    const interceptor = new Interceptor({ policy: policy.current, principal: { type: "Agent", id: opts.config.agentId }, node: opts.config.node, sink, clock: opts.clock ?? systemClock });
    const upstreams = await connectUpstreams(opts.config.upstreams);
    closers.push(() => upstreams.close());
    const tools = toolRegistry(builtinTools({ allowedDomains: opts.config.allowedDomains, httpGet: { allowPrivateNetworks: opts.config.allowPrivateNetworks } }), upstreams.tools);
    const running: RunningRuntime = {
      interceptor, policy, close: closeAll, ...(exporter ? { exporter } : {}),
      ...(enrollment && cpPoller ? { controlPlane: { nodeId: enrollment.nodeId, enrolled: enrollment.enrolled, poller: cpPoller } } : {}),
    };
    if (opts.listen) {
      const server = createToolServer({ interceptor, tools, policy: policy.current, auth, ...(tls ? { tls } : {}), logger: createLogger({ name: "autonomy.runtime.http", level: "warn" }), ...(telemetry ? { telemetry } : {}) });
      closers.push(() => server.close());
      if ("path" in opts.listen) {
        closers.push(await listenUnix(server, opts.listen.path, opts.listen.mode));
        running.url = `unix:${opts.listen.path}`;
      } else {
        running.url = await listenTcp(server, opts.listen.host, opts.listen.port);
      }
      running.server = server;
      running.auth = { tokensPath: auth.path, activeTokens };
    }
    if (opts.stdio) {
      const mcpLog = createLogger({ name: "autonomy.runtime.mcp", level: "warn" }); // stderr: stdout carries MCP
      const served = await serveMcpStdio({ interceptor, tools, onInternalError: (err) => mcpLog.error({ err }, "mcp tool call failed") });
      closers.push(served.close);
    }
    return running;
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/**
 * The release poller, run until the runtime closes (stopped before the WAL
 * closes: closers run in reverse). It never throws: the node keeps enforcing
 * its policy whatever the control plane does.
 */
function startPoller(opts: StartRuntimeOptions, cp: ControlPlaneOptions, enrollment: Enrollment, wal: LiveWal, closers: (() => Promise<void> | void)[]): ReleasePoller {
  const poller = new ReleasePoller({
    stateRoot: opts.stateRoot, client: enrollment.client, enrollment: enrollment.file, channel: cp.channel ?? "stable", wal,
    walGeneration: () => wal.current.generation, clock: opts.clock ?? systemClock,
    ...(cp.pollIntervalMs !== undefined ? { intervalMs: cp.pollIntervalMs } : {}),
    ...(cp.repositoryOptions ? { repositoryOptions: cp.repositoryOptions } : {}),
    ...(cp.random ? { random: cp.random } : {}),
  });
  const ac = new AbortController();
  const log = createLogger({ name: "autonomy.runtime.poller", level: "warn" });
  const running = poller.run(ac.signal).catch((e: unknown) => log.error({ err: e instanceof Error ? e.message : String(e) }, "RELEASE_POLLER_STOPPED"));
  closers.push(async () => {
    ac.abort();
    await running;
  });
  return poller;
}

/** Where the runtime's exporter sends control-plane events, as which node, with which credential. */
interface EventsDestination {
  url: string;
  nodeId?: string;
  token?: string;
  /** `--server-ca`, when the events go to that very server (the poller's TLS settings). */
  ca?: string;
}

/**
 * `--server` (enrolled): that control plane by default, or `[telemetry]
 * control_plane_url`; `exportEvents: false` turns control-plane export off.
 * Without `--server`: `control_plane_url` only, with the node credential of
 * control-plane.json when the node enrolled with that very server. The
 * credential never goes to another server.
 */
async function eventsDestination(opts: StartRuntimeOptions, enrollment: Enrollment | undefined): Promise<EventsDestination | undefined> {
  const configured = opts.config.telemetry.controlPlaneUrl;
  if (opts.controlPlane?.exportEvents === false) return undefined;
  const file = enrollment?.file ?? (configured !== undefined ? await readControlPlane(opts.stateRoot) : undefined);
  const url = configured ?? enrollment?.file.server;
  if (url === undefined) return undefined;
  // The exporter trusts the control plane's certificate exactly as the poller does: --server-ca for --server.
  const serverCa = opts.controlPlane?.ca;
  const ca = serverCa !== undefined && opts.controlPlane !== undefined && sameServer(url, opts.controlPlane.server) ? { ca: serverCa } : {};
  if (file === undefined || !sameServer(url, file.server)) return { url, ...ca };
  // The credential crosses the network only as enrollment allows (https, loopback, or --server-plain-http).
  checkTransport(new URL(url), opts.controlPlane?.plainHttp === true);
  return { url, nodeId: file.node_id, token: file.credential, ...ca };
}

/** The TLS certificate and key named by the config, read once at start (a bad file stops the start). */
async function readTls(config: RuntimeConfig): Promise<{ cert: Buffer; key: Buffer } | undefined> {
  return config.tls ? readTlsFiles(config.tls) : undefined;
}

/**
 * Reads a PEM certificate and private key and checks they make a TLS context
 * (RUNTIME_TLS_INVALID naming the file otherwise). Shared with `autonomy serve`.
 */
export async function readTlsFiles(tls: { cert: string; key: string }): Promise<{ cert: Buffer; key: Buffer }> {
  const config = { tls };
  const read = async (path: string, what: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (e) {
      throw new RuntimeError("RUNTIME_TLS_INVALID", `cannot read the TLS ${what} ${path}`, { cause: e });
    }
  };
  const cert = await read(config.tls.cert, "certificate");
  const key = await read(config.tls.key, "private key");
  try {
    // Fails here, with the file named, rather than inside the server on the first handshake.
    createSecureContext({ cert, key });
  } catch (e) {
    throw new RuntimeError("RUNTIME_TLS_INVALID", `the TLS certificate ${config.tls.cert} and key ${config.tls.key} are not a PEM certificate and its private key: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  return { cert, key };
}

/** A lifecycle event for the WAL (`ai.agent.lifecycle`, drained after errors and decisions). */
function lifecycleEvent(phase: string, opts: StartRuntimeOptions, policy: LivePolicy, extra: Record<string, unknown>): Record<string, unknown> {
  return { type: "ai.agent.lifecycle", phase, timestamp: isoTime(opts.clock ?? systemClock), agent_id: opts.config.agentId, pid: process.pid, policy_ref: policy.current()?.ref ?? "none", ...extra };
}

/**
 * The runtime's own exporter (when a destination is configured): drains the
 * WAL highest priority first, retrying with backoff for as long as the
 * receiver is away, and reclaims sealed segments as soon as they are
 * confirmed. Stopped (and its lock released) before the WAL closes.
 */
function startExporter(opts: StartRuntimeOptions, wal: LiveWal, events: EventsDestination | undefined): { exporter: Exporter; stop: () => Promise<void> } | undefined {
  const t = opts.config.telemetry;
  // Enrolled: the control plane takes events only under the node's own id (403 NODE_IDENTITY_MISMATCH otherwise).
  const nodeId = events?.nodeId ?? t.nodeId ?? opts.config.node.node_id ?? hostname();
  const sink = sinkFor({
    nodeId, clock: opts.clock ?? systemClock, ...(t.otlpUrl ? { otlpUrl: t.otlpUrl } : {}), ...(t.otlpCompression ? { compression: t.otlpCompression } : {}),
    ...(events ? { controlPlaneUrl: events.url, ...(events.token !== undefined ? { controlPlaneToken: events.token } : {}), ...(events.ca !== undefined ? { controlPlaneCa: events.ca } : {}) } : {}),
  });
  if (!sink) return undefined;
  const log: ExporterLogger = createLogger({ name: "autonomy.telemetry.exporter", level: "warn" });
  const exporter = new Exporter({ wal: wal.dir, sink, nodeId, log, clock: opts.clock ?? systemClock, ...(opts.exporterPollMs ? { pollMs: opts.exporterPollMs } : {}) });
  const ac = new AbortController();
  const running = exporter.run(ac.signal, { onDrain: (r) => void wal.reclaim(r.pos).catch(() => undefined) }).catch((e: unknown) => {
    log.error({ err: e instanceof Error ? e.message : String(e) }, "EXPORTER_STOPPED");
  });
  return {
    exporter,
    stop: async () => {
      ac.abort();
      await running;
      await exporter.close();
    },
  };
}
