import { FRAME_HEADER_BYTES, decodePayload } from "./codec.js";
import type { WalEntry } from "./codec.js";
import { WalFailHard } from "./errors.js";
import { nodeWalFs } from "./fs.js";
import type { WalFs } from "./fs.js";
import { readGeneration } from "./generation.js";
import { walPaths } from "./paths.js";
import { readSegmentLayout } from "./segments.js";
import type { Segment } from "./segments.js";
import { inspectWalImage } from "./verify.js";
import type { ImageFile, Violation, WalImage, WalInspection } from "./verify.js";

/** A live writer sealing or reclaiming between our listing and our reads changes the listing; read again. */
const ATTEMPTS = 5;

/**
 * The whole retained WAL image (base, sealed segments, active file, safe
 * point) read without opening the WAL: no recovery, no lock, nothing written.
 * The safe point is read first: frames it covers were fsynced before it was
 * published. If the directory listing changed while we read (a seal or a
 * reclamation by a live writer), the read is repeated.
 */
export async function readWalImage(dir: string, fs: WalFs = nodeWalFs): Promise<WalImage> {
  for (let attempt = 1; ; attempt++) {
    const before = (await fs.list(dir)).sort().join("/");
    const img = await readOnce(dir, fs);
    const after = (await fs.list(dir)).sort().join("/");
    if (before === after || attempt >= ATTEMPTS) return img;
  }
}

async function readOnce(dir: string, fs: WalFs): Promise<WalImage> {
  const p = walPaths(dir);
  const safeSeqBytes = await fs.readFile(p.safeSeq);
  let layoutViolations: Violation[] = [];
  let layout: { base: number; retained: Segment[] } = { base: 0, retained: [] };
  try {
    layout = await readSegmentLayout(fs, dir);
  } catch (e) {
    if (!(e instanceof WalFailHard)) throw e;
    layoutViolations = [{ code: e.code, invariant: e.code === "FIRST_SEQ_NOT_ONE" ? "R1_FIRST_SEQ_IS_ONE" : "R2_SEQ_CONTIGUOUS", msg: e.message }];
  }
  const files: ImageFile[] = [];
  for (const s of layout.retained) {
    files.push({ data: (await fs.readFile(s.path)) ?? new Uint8Array(0), segment: { name: s.name, first: s.first, last: s.last, sha256: s.sha256 } });
  }
  files.push({ data: (await fs.readFile(p.wal)) ?? new Uint8Array(0) });
  // The generation record beside the directory says which legacy gaps an upgrade accepted (OBS-4).
  let legacyThrough: number | undefined;
  try {
    legacyThrough = (await readGeneration(fs, dir)).legacyThrough;
  } catch (e) {
    if (!(e instanceof WalFailHard)) throw e;
    layoutViolations = [...layoutViolations, { code: e.code, invariant: "R2_SEQ_CONTIGUOUS", msg: e.message }];
  }
  return { files, safeSeqBytes, base: layout.base, layoutViolations, ...(legacyThrough !== undefined ? { legacyThrough } : {}) };
}

/** Read-only inspection of a WAL directory, segments included (what `autonomy wal inspect|verify` show). */
export async function inspectWalDir(dir: string, fs: WalFs = nodeWalFs): Promise<WalInspection> {
  return inspectWalImage(await readWalImage(dir, fs));
}

/**
 * Committed entries (base < seq ≤ safe_seq, ≥ `from`) read without opening the
 * WAL — safe beside a live writer, which only ever appends beyond the safe
 * point it has published. Returns the inspection too; when it names a
 * fail-hard cause, `entries` is empty. Loads the retained WAL in memory (an
 * operator's tool; the exporter streams instead).
 */
export async function readCommitted(dir: string, from = 1, fs: WalFs = nodeWalFs): Promise<{ entries: WalEntry[]; inspection: WalInspection }> {
  const img = await readWalImage(dir, fs);
  const inspection = inspectWalImage(img);
  if (inspection.fail_hard) return { entries: [], inspection };
  const limit = inspection.safe_seq ?? 0;
  const data = new Map(img.files.map((f) => [f.segment?.name, f.data]));
  const entries: WalEntry[] = [];
  for (const f of inspection.frames) {
    if (f.seq === null || f.seq > limit || f.seq < from) continue;
    const bytes = data.get(f.segment) ?? new Uint8Array(0);
    const entry = decodePayload(bytes.subarray(f.offset + FRAME_HEADER_BYTES, f.offset + FRAME_HEADER_BYTES + f.length));
    if (entry) entries.push(entry);
  }
  return { entries, inspection };
}
