import { dirname, resolve } from "node:path";
import { z } from "zod";
import { configKeyPath, describeBoundedReadProblem, errnoCode, parseConfigText, pathOverlap, readRegularFileBounded, realPathOverlap } from "../../lib/index.js";
import type { ConfigErrorFactory, FieldProblem } from "../../lib/index.js";
import { EdgeError } from "../errors.js";
import { CONFIG_VERSION, EDGE_DEFAULTS, edgeFileSchema } from "./schema.js";
import type { EdgeConfig, EdgeFile } from "./schema.js";

/** An edge.toml is a few KiB; anything near this is not one, and is refused before parsing. */
export const MAX_EDGE_CONFIG_BYTES = 1024 * 1024;
const WHAT = "edge config";

const fail: ConfigErrorFactory = (message, o) =>
  new EdgeError("EDGE_CONFIG_INVALID", message, {
    ...(o.cause === undefined ? {} : { cause: o.cause }),
    ...(o.fields === undefined ? {} : { details: { fields: o.fields } }),
  });

/**
 * Reads, validates and resolves an edge.toml (or edge.json): EDGE_CONFIG_INVALID
 * naming the file and every bad key, or EDGE_CONFIG_VERSION when the file is of
 * another config version (`autonomy config migrate` upgrades it).
 */
export async function loadEdgeConfig(path: string): Promise<EdgeConfig> {
  const config = parseEdgeConfig(path, await readBounded(path));
  await refuseRealOverlap(path, config);
  return config;
}

/**
 * The install-dir rule again over real paths (parseEdgeConfig's check is
 * lexical): `/opt/autonomy → /data` with the state root at `/data/state`
 * overlaps although the strings do not. Fails closed: a path whose real
 * location cannot be determined is refused too.
 */
async function refuseRealOverlap(path: string, c: EdgeConfig): Promise<void> {
  const install = c.bootstrap.runtimeInstallDir;
  if (install === undefined) return;
  const field = configKeyPath(["bootstrap", "runtime_install_dir"]);
  let overlap;
  try {
    overlap = await realPathOverlap(install, c.node.stateRoot);
  } catch (e) {
    throw fail(`${path}: ${field}: cannot resolve the real location of ${install} or of the state root (${errnoCode(e) ?? String(e)}): refusing, as it might overlap the state root`, { cause: e, fields: [{ field, problem: "real path unresolvable" }] });
  }
  if (overlap === undefined) return;
  const how = { same: "is", inside: "is inside", above: "contains" }[overlap];
  const problem = `${install} (through a symbolic link) ${how} the state root ${c.node.stateRoot}: the runtime must be installed in a directory of its own, outside the state root`;
  throw fail(`${path}: ${field}: ${problem}`, { fields: [{ field, problem }] });
}

/**
 * {@link loadEdgeConfig} without the read: `path` names the source in messages,
 * picks the syntax (`.json` or TOML) and is the base of relative paths.
 * Defaults come from EDGE_DEFAULTS; paths are made absolute.
 */
export function parseEdgeConfig(path: string, text: string): EdgeConfig {
  if (text.length > MAX_EDGE_CONFIG_BYTES) throw fail(`${path} is over ${MAX_EDGE_CONFIG_BYTES} bytes: not an edge config`, {});
  checkVersion(path, parseConfigText(path, text, z.unknown(), { what: WHAT, fail }));
  const file = parseConfigText(path, text, edgeFileSchema, { what: WHAT, fail });
  const config = resolveEdgeFile(path, file);
  const problems = semanticProblems(file, config);
  if (problems.length > 0) {
    throw fail(`${path}: ${problems.map((f) => `${f.field}: ${f.problem}`).join("; ")}`, { fields: problems });
  }
  return config;
}

/** A file of another version is EDGE_CONFIG_VERSION (with the migrate hint), not a list of unknown keys. */
function checkVersion(path: string, doc: unknown): void {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return;
  if (Object.keys(doc).length === 0) {
    const problem = { field: "config_version", problem: "required (an empty file is not an edge config)" };
    throw new EdgeError("EDGE_CONFIG_INVALID", `${path} is empty (no keys): ${problem.field}: ${problem.problem}`, {
      details: { fields: [problem] },
      hint: "write at least config_version = 1 and a [node] table with id and state_root (docs/edge-config.md lists every key)",
    });
  }
  const v = (doc as Record<string, unknown>).config_version;
  if (v === undefined) {
    throw new EdgeError("EDGE_CONFIG_VERSION", `${path} has no config_version: it is a version-0 edge config (the original product's spelling); this edged reads version ${CONFIG_VERSION}`, {
      details: { found_version: 0, expected_version: CONFIG_VERSION },
    });
  }
  if (typeof v === "number" && Number.isInteger(v) && v !== CONFIG_VERSION) {
    const newer = v > CONFIG_VERSION;
    throw new EdgeError("EDGE_CONFIG_VERSION", `${path} is edge config version ${v}; this edged reads version ${CONFIG_VERSION}`, {
      details: { found_version: v, expected_version: CONFIG_VERSION },
      ...(newer ? { hint: "the file was written for a newer edged: upgrade edged, or rewrite the file for this version (docs/edge-config.md)" } : {}),
    });
  }
  // Any other value (a string, a float) is a plain schema error, reported with the rest.
}

/** The validated file with defaults applied and paths absolute (relative ones are relative to the file's directory). */
export function resolveEdgeFile(path: string, f: EdgeFile): EdgeConfig {
  const source = resolve(path);
  const base = dirname(source);
  const abs = (p: string): string => resolve(base, p);
  const D = EDGE_DEFAULTS;
  const r = f.relay ?? {};
  const retry = r.retry ?? {};
  const s = f.scheduler ?? {};
  const st = f.storage ?? {};
  const bw = f.bandwidth ?? {};
  const b = f.bootstrap ?? {};
  return {
    source,
    node: { id: f.node.id, stateRoot: abs(f.node.state_root) },
    transport: {
      certFile: abs(f.transport.cert_file),
      keyFile: abs(f.transport.key_file),
      caFile: abs(f.transport.ca_file),
      ...(f.transport.listen === undefined ? {} : { listen: f.transport.listen }),
    },
    relay: {
      enabled: r.enabled ?? D.relay.enabled,
      successCondition: r.success_condition ?? D.relay.successCondition,
      workerCount: r.worker_count ?? D.relay.workerCount,
      dialTimeoutMs: ms(r.dial_timeout_seconds) ?? D.relay.dialTimeoutMs,
      ackTimeoutMs: ms(r.ack_timeout_seconds) ?? D.relay.ackTimeoutMs,
      maxSegmentBytes: r.max_segment_bytes ?? D.relay.maxSegmentBytes,
      evictOnRelay: r.evict_on_relay ?? D.relay.evictOnRelay,
      relayActivatedRelease: r.relay_activated_release ?? D.relay.relayActivatedRelease,
      activateRelayedReleases: r.activate_relayed_releases ?? D.relay.activateRelayedReleases,
      retry: {
        maxRetry: retry.max_retry ?? D.relay.retry.maxRetry,
        backoffInitialMs: retry.backoff_initial_ms ?? D.relay.retry.backoffInitialMs,
        backoffMaxMs: retry.backoff_max_ms ?? D.relay.retry.backoffMaxMs,
        jitter: retry.jitter ?? D.relay.retry.jitter,
      },
    },
    scheduler: {
      intervalMs: ms(s.schedule_interval_seconds) ?? D.scheduler.intervalMs,
      maxConcurrentRelays: s.max_concurrent_relays ?? D.scheduler.maxConcurrentRelays,
      maxSegmentsPerRound: s.max_segments_per_scheduling_round ?? D.scheduler.maxSegmentsPerRound,
    },
    storage: {
      ceilingBytes: st.ceiling_bytes ?? D.storage.ceilingBytes,
      deadletterRetentionMs: st.deadletter_retention_hours === undefined ? D.storage.deadletterRetentionMs : Math.round(st.deadletter_retention_hours * 3600 * 1000),
    },
    bandwidth: {
      bytes_per_second: bw.bytes_per_second ?? D.bandwidth.bytes_per_second,
      daily_quota_bytes: bw.daily_quota_bytes ?? D.bandwidth.daily_quota_bytes,
      quota_reset_utc: bw.quota_reset_utc ?? D.bandwidth.quota_reset_utc,
    },
    peers: (f.peers ?? []).map((p) => ({ id: p.id, address: p.address })),
    bootstrap: {
      ...(b.runtime_install_dir === undefined ? {} : { runtimeInstallDir: abs(b.runtime_install_dir) }),
      osReleaseFile: abs(b.os_release_file ?? D.bootstrap.osReleaseFile),
      kernelReleaseFile: abs(b.kernel_release_file ?? D.bootstrap.kernelReleaseFile),
      ...(b.machine_arch === undefined ? {} : { machineArch: b.machine_arch }),
    },
  };
}

/** Rules across keys, which the per-key schema cannot state; each names the key to fix. */
function semanticProblems(f: EdgeFile, c: EdgeConfig): FieldProblem[] {
  const out: FieldProblem[] = [];
  const seen = new Map<string, number>();
  (f.peers ?? []).forEach((p, i) => {
    const first = seen.get(p.id);
    if (first !== undefined) out.push({ field: configKeyPath(["peers", i, "id"]), problem: `duplicate peer id (also peers[${first}])` });
    else seen.set(p.id, i);
    if (p.id === f.node.id) out.push({ field: configKeyPath(["peers", i, "id"]), problem: "a peer cannot be this node ([node] id)" });
  });
  const { backoffInitialMs, backoffMaxMs } = c.relay.retry;
  if (backoffInitialMs > backoffMaxMs) {
    const which = f.relay?.retry?.backoff_initial_ms === undefined ? "backoff_max_ms" : "backoff_initial_ms";
    out.push({ field: configKeyPath(["relay", "retry", which]), problem: `backoff_initial_ms (${backoffInitialMs}) must not exceed backoff_max_ms (${backoffMaxMs})` });
  }
  // A reconstruction replaces the install dir's content wholesale: sharing it with the state root would swap the WAL and node state away.
  const install = c.bootstrap.runtimeInstallDir;
  const overlap = install === undefined ? undefined : pathOverlap(install, c.node.stateRoot);
  if (overlap !== undefined) {
    const how = { same: "is", inside: "is inside", above: "contains" }[overlap];
    out.push({ field: configKeyPath(["bootstrap", "runtime_install_dir"]), problem: `${install} ${how} the state root ${c.node.stateRoot}: the runtime must be installed in a directory of its own, outside the state root` });
  }
  return out;
}

function ms(seconds: number | undefined): number | undefined {
  return seconds === undefined ? undefined : Math.round(seconds * 1000);
}

/**
 * Reads at most MAX_EDGE_CONFIG_BYTES + 1 bytes of a regular file, so a huge
 * file is refused without reading it all, and an endless one (a FIFO,
 * /dev/zero behind a symlink) without reading it at all. Also
 * `autonomy config migrate`'s reader.
 */
export async function readEdgeConfigBytes(path: string): Promise<Buffer> {
  return readRegularFileBounded(path, MAX_EDGE_CONFIG_BYTES, (p, cause) => {
    const o = cause === undefined ? {} : { cause };
    if (p.kind === "too_big") return fail(`${path} is over ${MAX_EDGE_CONFIG_BYTES} bytes: not an edge config`, o);
    if (p.kind === "unreadable") {
      // "fix the named keys" is no help for a file that is not there or not readable.
      const hint = p.errno === "ENOENT" ? "the file does not exist: check the --config path (a typo?), or write edge.toml first (docs/edge-config.md)" : "edged cannot read the file: check its permissions and that it is a file";
      return new EdgeError("EDGE_CONFIG_INVALID", `cannot read ${WHAT} ${path}: ${p.errno}`, { ...o, hint });
    }
    return fail(`cannot read ${WHAT} ${path}: ${describeBoundedReadProblem(p)}`, o);
  });
}

async function readBounded(path: string): Promise<string> {
  return (await readEdgeConfigBytes(path)).toString("utf8");
}
