import { FRAME_HEADER_BYTES, decodePayload } from "./codec.js";
import type { WalEntry } from "./codec.js";
import { nodeWalFs } from "./fs.js";
import type { WalFs } from "./fs.js";
import { walPaths } from "./paths.js";
import { inspectWal } from "./verify.js";
import type { WalInspection } from "./verify.js";

/**
 * Committed entries (seq ≤ safe_seq, ≥ `from`) read without opening the WAL:
 * no recovery, no lock, nothing truncated — safe beside a live writer, which
 * only ever appends beyond the safe point it has published. Returns the
 * inspection too; when it names a fail-hard cause, `entries` is empty.
 */
export async function readCommitted(dir: string, from = 1, fs: WalFs = nodeWalFs): Promise<{ entries: WalEntry[]; inspection: WalInspection }> {
  const p = walPaths(dir);
  // safe_seq first: frames it covers were fsynced before it was published.
  const safe = await fs.readFile(p.safeSeq);
  const wal = (await fs.readFile(p.wal)) ?? new Uint8Array(0);
  const inspection = inspectWal(wal, safe);
  if (inspection.fail_hard) return { entries: [], inspection };
  const limit = inspection.safe_seq ?? 0;
  const view = Buffer.from(wal.buffer, wal.byteOffset, wal.byteLength);
  const entries: WalEntry[] = [];
  for (const f of inspection.frames) {
    if (f.seq === null || f.seq > limit || f.seq < from) continue;
    const entry = decodePayload(view.subarray(f.offset + FRAME_HEADER_BYTES, f.offset + FRAME_HEADER_BYTES + f.length));
    if (entry) entries.push(entry);
  }
  return { entries, inspection };
}
