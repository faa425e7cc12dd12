import { createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { z } from "zod";
import { UsageError, crashPoint, dateOf, systemClock, writeFileAtomic } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import { keyIdOf } from "../sign/index.js";
import type { TrustedKey } from "../sign/index.js";
import { DEFAULT_CHANNEL } from "../supplychain/index.js";
import { NodeError } from "./errors.js";
import { parseNodeFile, readOptionalText } from "./json-file.js";
import { stateRootPaths } from "./layout.js";
import { MAX_KEY_ROTATIONS, MAX_TRUSTED_KEY_IDS_EVER } from "./state-schema.js";
import type { KeyRotationRecord, NodeState, RetiredFloor } from "./state-schema.js";
import { commitNodeState } from "./state.js";

/**
 * The node's trust root (TUF's root of trust, single role): which release keys
 * it trusts, how many must sign, and which channel and repository it follows.
 * Set only locally by the operator (`runtime trust set`), never by a release.
 */
export interface TrustRoot {
  keys: (TrustedKey & { pem: string })[];
  threshold: number;
  channel: string;
  repository: string;
  updated_at: string;
}

const CHANNEL_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const fileSchema = z.strictObject({
  version: z.literal(1),
  keys: z.array(z.strictObject({ key_id: z.string().regex(/^[a-f0-9]{64}$/), public_key: z.string().min(1) })).min(1).max(32),
  threshold: z.number().int().min(1),
  channel: z.string().regex(CHANNEL_RE),
  repository: z.string().min(1).max(512),
  updated_at: z.string().min(1),
});

/** A key from its SPKI PEM; the stored key id must be the one this PEM hashes to (a hand-edited file is refused). */
function trustedKey(pem: string, claimedId: string | undefined, where: string): TrustedKey & { pem: string } {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: "pem" });
  } catch (e) {
    throw new NodeError("TRUST_INVALID", `${where}: not a PEM public key`, { cause: e });
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new NodeError("TRUST_INVALID", `${where}: not an ECDSA P-256 public key`);
  }
  const keyId = keyIdOf(key);
  if (claimedId !== undefined && claimedId !== keyId) throw new NodeError("TRUST_INVALID", `${where}: key_id ${claimedId} is not the id of its public key (${keyId})`);
  return { keyId, key, pem: key.export({ type: "spki", format: "pem" }).toString() };
}

/** Reads the trust root; `undefined` when none was ever set. A malformed file fails hard. */
export async function readTrustRoot(stateRoot: string): Promise<TrustRoot | undefined> {
  const path = stateRootPaths(stateRoot).trust;
  const raw = await readOptionalText(path, "TRUST_INVALID");
  if (raw === undefined) return undefined;
  const doc = parseNodeFile(path, raw, fileSchema, "TRUST_INVALID");
  const keys = doc.keys.map((k, i) => trustedKey(k.public_key, k.key_id, `${path} keys[${i}]`));
  return checked({ keys, threshold: doc.threshold, channel: doc.channel, repository: doc.repository, updated_at: doc.updated_at }, path);
}

/** The trust root, or a refusal saying how to set one: a node without one trusts nothing (fail closed). */
export async function requireTrustRoot(stateRoot: string): Promise<TrustRoot> {
  const t = await readTrustRoot(stateRoot);
  if (!t) throw new NodeError("TRUST_NOT_CONFIGURED", `no trusted release keys are configured for ${stateRoot}`);
  return t;
}

function checked(t: TrustRoot, where: string): TrustRoot {
  const ids = new Set(t.keys.map((k) => k.keyId));
  if (ids.size !== t.keys.length) throw new NodeError("TRUST_INVALID", `${where}: the same key is listed twice`);
  if (t.threshold > ids.size) throw new NodeError("TRUST_INVALID", `${where}: threshold ${t.threshold} is more than the ${ids.size} trusted key(s)`);
  if (!CHANNEL_RE.test(t.channel)) throw new NodeError("TRUST_INVALID", `${where}: channel ${JSON.stringify(t.channel)} must match ${CHANNEL_RE.source}`);
  if (t.repository.length === 0) throw new NodeError("TRUST_INVALID", `${where}: repository is empty`);
  return t;
}

export interface TrustChange {
  /** Replaces the key set when given: SPKI PEM text each, or with the file it came from (named in errors). */
  keys?: (string | { pem: string; source: string })[];
  threshold?: number;
  channel?: string;
  repository?: string;
  /** Reset the sequence floor although the new key set shares a key with the old one. */
  resetFloor?: boolean;
  clock?: Clock;
}

export interface TrustSetResult {
  trust: TrustRoot;
  state: NodeState;
  /** Present when the key set changed. */
  rotation?: KeyRotationRecord;
}

/**
 * Sets the trust root, inside the state lock: trust.json is written first, then
 * the state records the key set the floor belongs to (and, on rotation, the
 * rotation and any floor reset). Killed between the two, the new keys are
 * trusted with the OLD floor kept (fail safe), and a rerun finishes the reset.
 *
 * Fast-forward recovery (TUF resets its trusted timestamp/snapshot when their
 * keys rotate): the floor (highest sequence, its statement, newest issued_at)
 * is reset when no key of the new set was EVER trusted before (the state
 * remembers every key id trusted, `trusted_key_ids_ever`), so a sequence
 * inflated with a stolen key cannot block the new key's releases; with a set
 * holding a kept or a previously trusted key it is kept unless `resetFloor`
 * (statements signed by that key would become replayable: A → B → A). A
 * reset remembers the floor it discards with its key set (`retired_floors`,
 * in the same state write); trusting any of those keys again restores it
 * when it is higher, so A → B → A refuses A's old statements even when no B
 * release raised the floor in between.
 */
export async function setTrustRoot(stateRoot: string, change: TrustChange): Promise<TrustSetResult> {
  const now = dateOf(change.clock ?? systemClock).toISOString();
  const path = stateRootPaths(stateRoot).trust;
  // Filled inside the commit (the closure runs under the state lock).
  const out: { trust?: TrustRoot; rotation?: KeyRotationRecord } = {};
  const state = await commitNodeState(stateRoot, async (prev) => {
    const old = await readTrustRoot(stateRoot);
    const trust = checked(merged(old, change, now, path), path);
    out.trust = trust;
    await writeFileAtomic(path, serialize(trust), 0o644);
    crashPoint("trust-after-write");
    const to = trust.keys.map((k) => k.keyId).sort();
    // The floor belongs to the key set recorded in the state (not trust.json, which a killed run may have written alone).
    const from = prev.trust_key_ids ?? old?.keys.map((k) => k.keyId).sort();
    const changed = from !== undefined && !sameSet(from, to);
    const before = everTrusted(prev, from);
    const trusted_key_ids_ever = remembered(before, to, path);
    if (!changed && !change.resetFloor) return { ...prev, trust_key_ids: to, trusted_key_ids_ever };
    // Only a set of keys never trusted before resets by itself: going back to an old key (A → B → A) would replay A's statements.
    const reset = change.resetFloor === true || (from !== undefined && !to.some((id) => before.has(id)));
    const rotation: KeyRotationRecord = { at: now, from: from ?? [], to, floor_reset: reset, previous_sequence: prev.highest_sequence };
    out.rotation = rotation;
    // A reset by rotation remembers the floor it discards (an operator's explicit reset says that floor is bad: not kept).
    const retired = reset && !change.resetFloor && from !== undefined && from.length > 0 ? retiredFloorOf(prev, from, path) : prev.retired_floors;
    const next = reset ? withoutFloor(prev) : withRestoredFloor(prev, to);
    return { ...next, ...(retired ? { retired_floors: retired } : {}), trust_key_ids: to, trusted_key_ids_ever, key_rotations: [...prev.key_rotations, rotation].slice(-MAX_KEY_ROTATIONS) };
  });
  if (!out.trust) throw new Error("setTrustRoot: the commit ran without computing the trust root");
  return { trust: out.trust, state, ...(out.rotation ? { rotation: out.rotation } : {}) };
}

function merged(old: TrustRoot | undefined, c: TrustChange, now: string, where: string): TrustRoot {
  const keys = c.keys ? c.keys.map((k, i) => (typeof k === "string" ? trustedKey(k, undefined, `key #${i + 1}`) : trustedKey(k.pem, undefined, k.source))) : old?.keys;
  if (!keys || keys.length === 0) throw new NodeError("TRUST_INVALID", `${where}: no trusted keys given (--key K.pub)`);
  const repository = c.repository ?? old?.repository;
  if (repository === undefined) throw new NodeError("TRUST_INVALID", `${where}: the repository the node follows is not set (--repository)`);
  // Never lowered quietly: fewer keys than the old threshold needs the operator to say what the new one is.
  if (c.keys && c.threshold === undefined && old !== undefined && keys.length < old.threshold) {
    throw new UsageError(`the new key set has ${keys.length} key(s), fewer than the current threshold of ${old.threshold}`,
      `pass --threshold N (at most ${keys.length}) to say how many of the new keys must sign; it is not lowered silently`);
  }
  return { keys, threshold: c.threshold ?? old?.threshold ?? 1, channel: c.channel ?? old?.channel ?? DEFAULT_CHANNEL, repository, updated_at: now };
}

/**
 * Every key id trusted before this change. A state written before the list
 * existed is seeded from what it still records (the floor's key set and the
 * rotation history, newest 16).
 */
function everTrusted(prev: NodeState, from: readonly string[] | undefined): Set<string> {
  const ids = new Set([...(prev.trusted_key_ids_ever ?? []), ...(from ?? [])]);
  for (const r of prev.key_rotations) for (const id of [...r.from, ...r.to]) ids.add(id);
  return ids;
}

/** The remembered ids with the new set added; refused (never truncated) past the bound. */
function remembered(before: ReadonlySet<string>, to: readonly string[], where: string): string[] {
  const all = [...new Set([...before, ...to])].sort();
  if (all.length > MAX_TRUSTED_KEY_IDS_EVER) {
    throw new NodeError("TRUST_INVALID", `${where}: this node has trusted ${all.length} distinct keys, over the ${MAX_TRUSTED_KEY_IDS_EVER} it remembers`,
      { hint: "a node remembers every key it trusted so old statements stay refused; re-provision the node's state root rather than rotate further" });
  }
  return all;
}

function serialize(t: TrustRoot): string {
  const doc = { version: 1, keys: t.keys.map((k) => ({ key_id: k.keyId, public_key: k.pem })), threshold: t.threshold, channel: t.channel, repository: t.repository, updated_at: t.updated_at };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

function sameSet(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** The state with no sequence floor: the next validly signed statement at any sequence is accepted. */
function withoutFloor(s: NodeState): NodeState {
  const { highest_statement_digest: _d, newest_issued_at: _i, legacy_highest_artifact_digest: _l, ...rest } = s;
  return { ...rest, highest_sequence: 0 };
}

/** The retired floors with the one held under `keys` added; refused (never truncated) past the bound. */
function retiredFloorOf(prev: NodeState, keys: readonly string[], where: string): RetiredFloor[] {
  const f: RetiredFloor = {
    key_ids: [...keys], highest_sequence: prev.highest_sequence,
    ...(prev.highest_statement_digest !== undefined ? { highest_statement_digest: prev.highest_statement_digest } : {}),
    ...(prev.newest_issued_at !== undefined ? { newest_issued_at: prev.newest_issued_at } : {}),
    ...(prev.legacy_highest_artifact_digest !== undefined ? { legacy_highest_artifact_digest: prev.legacy_highest_artifact_digest } : {}),
  };
  const all = [...(prev.retired_floors ?? []), f];
  if (all.length > MAX_TRUSTED_KEY_IDS_EVER) {
    throw new NodeError("TRUST_INVALID", `${where}: this node has reset its floor ${all.length} times, over the ${MAX_TRUSTED_KEY_IDS_EVER} it remembers`,
      { hint: "re-provision the node's state root rather than rotate further" });
  }
  return all;
}

/**
 * Keys trusted again (A → B → A): the highest floor retired under any of them
 * comes back if it is above the current one, and the newest issued_at is the
 * later of the two. Never lowers anything; a state without retired floors
 * (written before they were kept) keeps its current floor.
 */
function withRestoredFloor(prev: NodeState, to: readonly string[]): NodeState {
  let next = prev;
  for (const f of prev.retired_floors ?? []) {
    if (!f.key_ids.some((id) => to.includes(id))) continue;
    const newest = laterOf(next.newest_issued_at, f.newest_issued_at);
    if (f.highest_sequence > next.highest_sequence) {
      const { highest_statement_digest: _d, legacy_highest_artifact_digest: _l, newest_issued_at: _i, ...rest } = next;
      next = {
        ...rest, highest_sequence: f.highest_sequence,
        ...(f.highest_statement_digest !== undefined ? { highest_statement_digest: f.highest_statement_digest } : {}),
        ...(f.legacy_highest_artifact_digest !== undefined ? { legacy_highest_artifact_digest: f.legacy_highest_artifact_digest } : {}),
      };
    }
    next = { ...next, ...(newest !== undefined ? { newest_issued_at: newest } : {}) };
  }
  return next;
}

function laterOf(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Date.parse(b) > Date.parse(a) ? b : a;
}

/** Whether the trusted keys that signed a statement still meet the trust root's threshold. */
export function meetsThreshold(trust: TrustRoot, keyIds: readonly string[]): boolean {
  const trusted = new Set(trust.keys.map((k) => k.keyId));
  return new Set(keyIds.filter((id) => trusted.has(id))).size >= trust.threshold;
}
