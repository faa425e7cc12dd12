/**
 * The WAL generation (docs/wal.md "Generations"): which incarnation of a WAL
 * directory a seq belongs to. A first run and an operator reset start seq at 1
 * again, so `seq` alone no longer names one event: the exporter's position
 * (telemetry.pos) and exported event ids carry the generation too, and a
 * position of another generation is never followed (S11: recovery itself
 * never touches telemetry.pos).
 *
 * Stored BESIDE the WAL directory, `<dir>.generation`, never inside it: the
 * seed names every file of its directory, and a seed-exact WAL
 * (`segmentBytes: 0`) must hold only those. JSON:
 *   {"generation":"<32 hex>"}                       first run, operator reset
 *   {"generation":"000…0","legacy_through":S,"legacy_gaps":[…]}   legacy upgrade (OBS-4)
 * Missing means the legacy generation (all zeros): a WAL created before
 * generations existed, whose 8-byte telemetry.pos belongs to it.
 */
import { randomBytes } from "node:crypto";
import { replaceFileDurably } from "../../lib/index.js";
import { besideWalDir, besideWrite } from "./beside.js";
import { WalFailHard } from "./errors.js";
import type { WalFs } from "./fs.js";

/** The generation of a WAL that predates generations (and of an old 8-byte telemetry.pos). */
export const LEGACY_GENERATION = "0".repeat(32);
const HEX32 = /^[0-9a-f]{32}$/;

/** A gap a legacy upgrade accepted: seq `seq` follows `after` (seed OBS-4). */
export interface LegacyGap {
  after: number;
  seq: number;
}

export interface Generation {
  /** 32 lowercase hex digits; LEGACY_GENERATION for a WAL without a generation file. */
  id: string;
  /**
   * Set by a legacy upgrade: frames with seq ≤ this were accepted as committed
   * without a gap check (OBS-4), so later openings accept the same gaps.
   */
  legacyThrough?: number;
  legacyGaps?: LegacyGap[];
}

/**
 * The gaps a reader accepts (seed OBS-4). During the upgrade itself any gap
 * (a higher seq than expected) up to `through`; on every later read exactly the
 * (after, seq) pairs that upgrade recorded, and no other: a frame lost since
 * is SEQ_GAP, never silently skipped.
 */
export interface LegacyRange {
  /** Seqs ≤ this were accepted by a legacy upgrade; 0 when none was. */
  readonly through: number;
  /** Whether seq `seq` may directly follow `after`. */
  accepts(after: number, seq: number): boolean;
}

export const NO_LEGACY: LegacyRange = { through: 0, accepts: () => false };

/** The upgrade's own scan: every increasing seq is accepted (and then recorded). */
export const UPGRADING: LegacyRange = { through: Number.POSITIVE_INFINITY, accepts: (after, seq) => seq > after };

/** What later reads accept: exactly the recorded pairs, within the recorded range. */
export function legacyRangeOf(g: Pick<Generation, "legacyThrough" | "legacyGaps">): LegacyRange {
  const through = g.legacyThrough ?? 0;
  if (through === 0) return NO_LEGACY;
  const pairs = new Set((g.legacyGaps ?? []).map((x) => `${x.after}>${x.seq}`));
  return { through, accepts: (after, seq) => seq <= through && pairs.has(`${after}>${seq}`) };
}

export function generationPath(dir: string): string {
  return besideWalDir(dir, "generation");
}

export function newGenerationId(): string {
  return randomBytes(16).toString("hex");
}

/** The generation file; the legacy generation when it is missing. A corrupt file fails hard: never guess whose positions to follow. */
export async function readGeneration(fs: WalFs, dir: string): Promise<Generation> {
  const raw = await fs.readFile(generationPath(dir));
  if (raw === undefined) return { id: LEGACY_GENERATION };
  const g = parseGeneration(Buffer.from(raw).toString("utf8"));
  if (!g) throw new WalFailHard("WAL_GENERATION_CORRUPT", dir, `${generationPath(dir)} is not a generation record`, { path: generationPath(dir), length: raw.byteLength });
  return g;
}

function parseGeneration(text: string): Generation | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof doc !== "object" || doc === null) return undefined;
  const { generation, legacy_through: through, legacy_gaps: gaps } = doc as Record<string, unknown>;
  if (typeof generation !== "string" || !HEX32.test(generation)) return undefined;
  const g: Generation = { id: generation };
  if (through !== undefined) {
    if (typeof through !== "number" || !Number.isSafeInteger(through) || through < 0) return undefined;
    g.legacyThrough = through;
    g.legacyGaps = Array.isArray(gaps) ? gaps.filter(isGap) : [];
  }
  return g;
}

function isGap(v: unknown): v is LegacyGap {
  const o = v as Partial<LegacyGap> | null;
  return typeof o === "object" && o !== null && Number.isSafeInteger(o.after) && Number.isSafeInteger(o.seq);
}

/** temp → fsync → rename → fsync(parent), like the safe point; the temp lies beside the directory too. */
export async function writeGeneration(fs: WalFs, dir: string, g: Generation): Promise<void> {
  const doc: Record<string, unknown> = { generation: g.id };
  if (g.legacyThrough !== undefined) {
    doc.legacy_through = g.legacyThrough;
    doc.legacy_gaps = g.legacyGaps ?? [];
  }
  const path = generationPath(dir);
  await besideWrite(dir, "the generation record", () => replaceFileDurably(path, `${path}.tmp`, Buffer.from(`${JSON.stringify(doc)}\n`, "utf8"), fs));
}
