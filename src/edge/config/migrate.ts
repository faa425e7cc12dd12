import { access, realpath, stat } from "node:fs/promises";
import { stringify } from "smol-toml";
import { z } from "zod";
import { parseConfigText, systemClock, writeFileAtomic } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { EdgeError } from "../errors.js";
import { MAX_EDGE_CONFIG_BYTES, parseEdgeConfig, readEdgeConfigBytes } from "./load.js";
import { CONFIG_VERSION } from "./schema.js";
import type { EdgeConfig } from "./schema.js";

/** One edit the migration makes, as `autonomy config migrate` prints it. */
export interface MigrationChange {
  action: "added" | "moved" | "changed" | "removed";
  /** The key as the old file spells it (for `added`, as the new one does). */
  key: string;
  /** Where it went, for `moved`. */
  to?: string;
  from_value?: unknown;
  to_value?: unknown;
  why: string;
}

/** What migrating a file would do (a dry run), or did. */
export interface MigrationPlan {
  file: string;
  from_version: number;
  to_version: number;
  /** The file is already of the current version: nothing to do. */
  current: boolean;
  changes: MigrationChange[];
  /** Comments and layout of the original cannot survive the TOML round-trip (the backup keeps them). */
  comments_lost: boolean;
  /** The new file's text; empty when current. */
  text: string;
  /** A line diff from the original to `text` (`- ` removed, `+ ` added, `  ` kept); empty when current. */
  diff: string[];
  /** The new file as edged will read it (validated by the v1 schema and the loader's checks). */
  config: EdgeConfig;
}

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
const fail = (message: string, o: { cause?: unknown }) => new EdgeError("EDGE_CONFIG_INVALID", message, o.cause === undefined ? {} : { cause: o.cause });
/** The order tables are written in, so the migrated file reads like the documented example. */
const TOP_ORDER = ["config_version", "node", "transport", "relay", "scheduler", "storage", "bandwidth", "bootstrap", "peers"];

/**
 * Plans the upgrade of an edge config text to version {@link CONFIG_VERSION}
 * without touching anything. Version 0 (no `config_version`) is the original
 * product's spelling, defined in docs/edge-config.md; the result is validated
 * exactly as edged will load it, so a plan never yields a file edged refuses.
 */
export function planMigration(path: string, text: string): MigrationPlan {
  if (text.length > MAX_EDGE_CONFIG_BYTES) throw fail(`${path} is over ${MAX_EDGE_CONFIG_BYTES} bytes: not an edge config`, {});
  const doc = parseConfigText(path, text, z.record(z.string(), z.unknown()), { what: "edge config", fail });
  const version = doc.config_version;
  if (version === CONFIG_VERSION) {
    return { file: path, from_version: CONFIG_VERSION, to_version: CONFIG_VERSION, current: true, changes: [], comments_lost: false, text: "", diff: [], config: parseEdgeConfig(path, text) };
  }
  if (version !== undefined && version !== 0) {
    throw new EdgeError("EDGE_CONFIG_VERSION", `${path} has config_version ${JSON.stringify(version)}; this autonomy migrates version 0 to ${CONFIG_VERSION}`, {
      hint: "a file written for a newer edged cannot be migrated back; upgrade autonomy and edged together",
      details: { found_version: version, expected_version: CONFIG_VERSION },
    });
  }
  refuseDeepNesting(path, doc);
  const next = structuredClone(doc);
  const changes = migrateV0(path, next);
  const out = ordered(next);
  const newText = path.endsWith(".json") ? `${JSON.stringify(out, null, 2)}\n` : `${stringify(out)}\n`;
  let config: EdgeConfig;
  try {
    config = parseEdgeConfig(path, newText);
  } catch (e) {
    if (!(e instanceof EdgeError)) throw e;
    throw new EdgeError("EDGE_CONFIG_INVALID", `after migrating to version ${CONFIG_VERSION}, ${e.message} (nothing was written)`, {
      hint: "fix these keys in the version-0 file by hand (docs/edge-config.md lists the version-1 keys), then run the migration again",
      cause: e, details: e.details,
    });
  }
  return { file: path, from_version: 0, to_version: CONFIG_VERSION, current: false, changes, comments_lost: hasComments(text), text: newText, diff: lineDiff(text, newText), config };
}

/** An edge config nests 3 levels ([[peers]] tables); far deeper is not one, and would overflow the stack of a recursive walk (structuredClone, stringify). */
export const MAX_EDGE_CONFIG_DEPTH = 32;

/** Iterative (the check itself must not recurse): EDGE_CONFIG_INVALID past MAX_EDGE_CONFIG_DEPTH. */
function refuseDeepNesting(path: string, doc: unknown): void {
  const stack: { v: unknown; d: number }[] = [{ v: doc, d: 0 }];
  while (stack.length > 0) {
    const { v, d } = stack.pop() ?? { v: undefined, d: 0 };
    if (typeof v !== "object" || v === null || v instanceof Date) continue;
    if (d > MAX_EDGE_CONFIG_DEPTH) throw fail(`${path} nests values deeper than ${MAX_EDGE_CONFIG_DEPTH} levels: not an edge config`, {});
    for (const c of Object.values(v)) stack.push({ v: c, d: d + 1 });
  }
}

/** Version 0 → 1, in place on `doc`; every edit is returned (docs/edge-config.md, "Version 0"). */
function migrateV0(path: string, doc: Table): MigrationChange[] {
  const changes: MigrationChange[] = [];
  doc.config_version = CONFIG_VERSION;
  changes.push({ action: "added", key: "config_version", to_value: CONFIG_VERSION, why: "version 1 files say their version" });
  const relay = doc.relay;
  if (isTable(relay)) {
    if (relay.success_condition === "ack") {
      relay.success_condition = "all_peers";
      changes.push({ action: "changed", key: "[relay] success_condition", from_value: "ack", to_value: "all_peers", why: "\"ack\" meant: delivered when every peer acknowledged" });
    }
    for (const key of ["bytes_per_second", "daily_quota_bytes"] as const) {
      if (!(key in relay)) continue;
      const value = relay[key];
      const bandwidth = isTable(doc.bandwidth) ? doc.bandwidth : (doc.bandwidth = {}) as Table;
      if (key in bandwidth && bandwidth[key] !== value) {
        throw fail(`${path}: [relay] ${key} and [bandwidth] ${key} are both set, to different values: keep the one you mean and delete the other, then migrate again`, {});
      }
      bandwidth[key] = value;
      delete relay[key];
      changes.push({ action: "moved", key: `[relay] ${key}`, to: `[bandwidth] ${key}`, why: "bandwidth has its own table (edgectl relay config set-bandwidth changes it hot)" });
    }
  }
  const transport = doc.transport;
  if (isTable(transport) && "ca_key_file" in transport) {
    const value = transport.ca_key_file;
    delete transport.ca_key_file;
    changes.push({ action: "removed", key: "[transport] ca_key_file", from_value: value, why: "edged never reads the fleet CA's private key: keep it off the node (certificates are issued with `autonomy cert issue`)" });
  }
  return changes;
}

/** Above this many line pairs the diff is left out (an edge.toml has tens of lines). */
const MAX_DIFF_CELLS = 4_000_000;

/** A plain LCS line diff: enough to show what a rewrite of a small file changes. */
export function lineDiff(before: string, after: string): string[] {
  const a = before.replace(/\n$/, "").split("\n");
  const b = after.replace(/\n$/, "").split("\n");
  if (a.length * b.length > MAX_DIFF_CELLS) return [`(diff left out: ${a.length} and ${b.length} lines)`];
  // lcs[i][j] = length of the longest common subsequence of a[i..] and b[j..].
  const lcs = Array.from({ length: a.length + 1 }, () => new Uint32Array(b.length + 1));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) { out.push(`  ${a[i]}`); i++; j++; }
    else if (j < b.length && (i >= a.length || lcs[i]![j + 1]! >= lcs[i + 1]![j]!)) out.push(`+ ${b[j++]}`);
    else out.push(`- ${a[i++]}`);
  }
  return out;
}

function ordered(doc: Table): Table {
  const out: Table = {};
  for (const k of TOP_ORDER) if (k in doc) out[k] = doc[k];
  for (const [k, v] of Object.entries(doc)) if (!(k in out)) out[k] = v;
  return out;
}

/** A `#` that starts a line or follows whitespace: a comment the TOML round-trip drops (a `#` inside a string may be counted: a warning, not a decision). */
function hasComments(text: string): boolean {
  return text.split("\n").some((l) => /(^|\s)#/.test(l));
}

export interface MigrateOptions {
  /** Replace the file (after a durable backup); without it nothing is written. */
  write?: boolean;
  clock?: Clock;
}

export interface MigrationResult extends MigrationPlan {
  written: boolean;
  /** The original, byte for byte, beside the file: `edge.toml.bak-<UTC time>`. */
  backup_file?: string;
}

/**
 * `autonomy config migrate`: plans the upgrade and, with `write`, first writes
 * a backup of the original bytes (durably: temp, fsync, rename, fsync dir) and
 * only then replaces the file the same way. A symlinked config is replaced at
 * its target. A file that changed since it was read is not replaced.
 */
export async function migrateEdgeConfigFile(path: string, opts: MigrateOptions = {}): Promise<MigrationResult> {
  const original = await readConfig(path);
  const plan = planMigration(path, original.toString("utf8"));
  if (plan.current || opts.write !== true) return { ...plan, written: false };
  const target = await realpath(path);
  const st = await stat(target);
  const mode = st.mode & 0o777;
  // Run with sudo, the replacement would be root's: keep the original's owner (edged's account must still read it).
  // (Only root can give a file away; anyone else's new file is theirs, as the original was.)
  const owner = process.getuid?.() === 0 ? { uid: st.uid, gid: st.gid } : undefined;
  const backup = await freeBackupName(target, (opts.clock ?? systemClock).now());
  await writeFileAtomic(backup, original, mode, owner);
  if (!(await readConfig(path)).equals(original)) {
    throw new EdgeError("EDGE_CONFIG_INVALID", `${path} changed while it was being migrated; it was not replaced (the backup ${backup} holds what was read)`, {
      hint: "run the migration again once nothing else is editing the file",
    });
  }
  await writeFileAtomic(target, plan.text, mode, owner);
  return { ...plan, written: true, backup_file: backup };
}

/** At most MAX_EDGE_CONFIG_BYTES + 1 bytes of a regular file (edged's reader): an endless FIFO or /dev/zero behind a symlink is refused, not drained. */
const readConfig = readEdgeConfigBytes;

/** `edge.toml.bak-20261206T055500Z`, or with `-2`, `-3`, … when that name is taken (a backup is never overwritten). */
async function freeBackupName(target: string, now: number): Promise<string> {
  const stamp = new Date(now).toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  for (let i = 1; i < 1000; i++) {
    const name = `${target}.bak-${stamp}${i === 1 ? "" : `-${i}`}`;
    if (!(await access(name).then(() => true, () => false))) return name;
  }
  throw fail(`${target}: a thousand backups named for this second already exist`, {});
}
