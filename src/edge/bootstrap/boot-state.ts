import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import { crashPoint, errnoCode, fsyncDir, writeFileAtomic } from "../../lib/index.js";
import { stateRootPaths } from "../../node/index.js";
import { EdgeError } from "../errors.js";

const fingerprint = z.string().regex(/^blake3:[a-f0-9]{64}$/);

const bootFileSchema = z.strictObject({
  composite_hash: fingerprint,
  /** 0 on the first boot; +1 after each successful reconstruction (never goes back). */
  boot_epoch: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  captured_at: z.string().min(1),
  /** The identity the hash was computed over, so an operator can see what changed. */
  identity: z.record(z.string(), z.unknown()),
});
export type BootFile = z.output<typeof bootFileSchema>;

/** What D and R read: the current boot epoch and fingerprint. */
export interface BootState {
  boot_epoch: number;
  composite_hash: string;
  captured_at: string;
}

const evidenceSchema = z.strictObject({
  epoch: z.number().int().positive(),
  previous_fingerprint: fingerprint,
  new_fingerprint: fingerprint,
  reconstructed_at: z.string().min(1),
  /** What was installed, from the verified bytes: null when no runtime install directory is configured. */
  installed: z.strictObject({
    manifest_digest: z.string().regex(/^sha256:[a-f0-9]{64}$/),
    install_dir: z.string().min(1),
    files: z.array(z.strictObject({ path: z.string(), blake3: fingerprint })),
  }).nullable(),
  /** The activation and policy slots found intact (what edged comes back on). */
  restored: z.strictObject({
    statement_digest: z.string().nullable(),
    policy_current: z.string().nullable(),
    policy_lkg: z.string().nullable(),
  }),
});
export type EpochEvidence = z.output<typeof evidenceSchema>;

async function readJson<T>(path: string, schema: z.ZodType<T>, what: string): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return undefined;
    throw new EdgeError("STATE_ROOT_INVALID", `cannot read the ${what} ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new EdgeError("STATE_ROOT_INVALID", `the ${what} ${path} is not JSON`, { cause: e });
  }
  const r = schema.safeParse(doc);
  if (!r.success) throw new EdgeError("STATE_ROOT_INVALID", `the ${what} ${path} is malformed: ${r.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ")}`);
  return r.data;
}

/** The fingerprint file, or undefined before the first boot. A malformed one fails hard (STATE_ROOT_INVALID). */
export function readBootFile(stateRoot: string): Promise<BootFile | undefined> {
  return readJson(stateRootPaths(stateRoot).osFingerprint, bootFileSchema, "OS fingerprint file");
}

/** The node's boot epoch and fingerprint (undefined before the first `edged precheck`). */
export async function readBootState(stateRoot: string): Promise<BootState | undefined> {
  const f = await readBootFile(stateRoot);
  return f && { boot_epoch: f.boot_epoch, composite_hash: f.composite_hash, captured_at: f.captured_at };
}

/** Writes the fingerprint file durably: the commit point of a first boot and of a reconstruction. */
export async function writeBootFile(stateRoot: string, file: BootFile): Promise<void> {
  const path = stateRootPaths(stateRoot).osFingerprint;
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, `${JSON.stringify(bootFileSchema.parse(file), null, 2)}\n`);
}

export const EVIDENCE_FILE = "evidence.json";

/** The evidence of the latest reconstruction (or the one before, or the last one that never committed), if any. */
export function readEvidence(stateRoot: string, which: "current" | "previous" | "abandoned" = "current"): Promise<EpochEvidence | undefined> {
  const p = stateRootPaths(stateRoot);
  const dir = which === "current" ? p.epochCurrent : which === "previous" ? p.epochPrevious : p.epochAbandoned;
  return readJson(join(dir, EVIDENCE_FILE), evidenceSchema, "epoch evidence");
}

/**
 * Writes `epoch/current/evidence.json`, moving the old current to
 * `epoch/previous` first. A rerun of the same epoch (the run before was
 * killed before its commit point) rewrites current instead of rotating, so
 * previous always holds the evidence of the epoch before.
 */
export async function writeEvidence(stateRoot: string, ev: EpochEvidence): Promise<void> {
  const p = stateRootPaths(stateRoot);
  const epochDir = dirname(p.epochCurrent);
  await mkdir(epochDir, { recursive: true });
  const current = await readEvidence(stateRoot).catch(() => undefined);
  const currentExists = await readFile(join(p.epochCurrent, EVIDENCE_FILE)).then(() => true, () => false);
  if (currentExists && current?.epoch !== ev.epoch) {
    await rm(p.epochPrevious, { recursive: true, force: true });
    await rename(p.epochCurrent, p.epochPrevious);
    await fsyncDir(epochDir);
    crashPoint("epoch-after-rotate");
  }
  await mkdir(p.epochCurrent, { recursive: true });
  await writeFileAtomic(join(p.epochCurrent, EVIDENCE_FILE), `${JSON.stringify(evidenceSchema.parse(ev), null, 2)}\n`);
  await fsyncDir(epochDir);
}

/**
 * The boot epoch never goes back: the fingerprint file's epoch must be at
 * least every committed evidence's epoch (epoch/current, epoch/previous). The
 * one evidence allowed above it is a reconstruction killed before its commit
 * point: epoch/current at exactly boot_epoch + 1, reconstructed FROM the
 * file's fingerprint. Anything else means the file was restored from a
 * backup or edited (3 → 0): STATE_ROOT_INVALID, the evidence left as it is.
 * (epoch/abandoned is never committed, so its number may be used again.)
 */
export async function refuseEpochRollback(stateRoot: string, file: BootFile): Promise<void> {
  const current = await readEvidence(stateRoot);
  const previous = await readEvidence(stateRoot, "previous");
  const uncommitted = current !== undefined && current.epoch === file.boot_epoch + 1 && current.previous_fingerprint === file.composite_hash;
  const committed = [uncommitted ? undefined : current, previous].filter((e): e is EpochEvidence => e !== undefined);
  const top = committed.reduce<EpochEvidence | undefined>((a, e) => (a === undefined || e.epoch > a.epoch ? e : a), undefined);
  if (top === undefined || top.epoch <= file.boot_epoch) return;
  const p = stateRootPaths(stateRoot);
  throw new EdgeError("STATE_ROOT_INVALID", `${p.osFingerprint} records boot epoch ${file.boot_epoch}, but the evidence in ${top === current ? p.epochCurrent : p.epochPrevious} shows this node reached boot epoch ${top.epoch}: the fingerprint file was restored from an older backup or edited, and the boot epoch must never go back`, {
    hint: `if nothing else in the state root was rolled back, remove ${p.osFingerprint}: the next precheck resumes from epoch/current's evidence (at its epoch, or reconstructs to the next one)`,
  });
}

/**
 * On a fingerprint match at `bootEpoch`: evidence in `epoch/current` of a
 * higher epoch is of a reconstruction killed before its commit point (the
 * node then booted its old OS again). It must not stand as the current
 * epoch's evidence: it moves to `epoch/abandoned`, and the evidence it had
 * rotated to `epoch/previous` (of an epoch <= bootEpoch) comes back to
 * current. Returns the abandoned epoch, if any.
 */
export async function abandonUncommittedEvidence(stateRoot: string, bootEpoch: number): Promise<number | undefined> {
  const p = stateRootPaths(stateRoot);
  const current = await readEvidence(stateRoot);
  if (current === undefined || current.epoch <= bootEpoch) return undefined;
  const epochDir = dirname(p.epochCurrent);
  await rm(p.epochAbandoned, { recursive: true, force: true });
  await rename(p.epochCurrent, p.epochAbandoned);
  await fsyncDir(epochDir);
  const previous = await readEvidence(stateRoot, "previous").catch(() => undefined);
  if (previous !== undefined && previous.epoch <= bootEpoch) {
    await rename(p.epochPrevious, p.epochCurrent);
    await fsyncDir(epochDir);
  }
  return current.epoch;
}
