/**
 * Hostile segmented directories, generated: a real WAL (random segment size,
 * random appends, random reclamation) on the in-memory file system, then one
 * random act of damage — a file deleted, truncated, a byte flipped, a segment
 * renamed to claim other seqs, garbage written as the base. Whatever the damage:
 *   - opening either succeeds or fails hard with a cause (WalFailHard), never
 *     anything else;
 *   - when it succeeds, what it reads back is EXACTLY the appended entries
 *     base+1..n, in order, content compared byte for byte (as JSON). Two
 *     exceptions, both the seed's format (no checksums): a changed
 *     telemetry.safe_seq that still decodes can name an earlier seq, and then
 *     recovery keeps exactly base+1..that seq (everything after is phantom);
 *     a flipped bit that leaves a committed frame of the ACTIVE segment valid
 *     JSON with the same seq goes unnoticed, so there only the seqs are exact.
 *     Sealed segments carry a SHA-256 in their name since this test found that
 *     gap, so a flip in one always fails hard;
 *   - the read-only verifier (inspectWalDir, run before recovery touches
 *     anything) agrees on whether recovery may proceed.
 * fast-check prints the seed and the shrunk case of a failure.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Wal, WalFailHard, inspectWalDir } from "./index.js";
import type { WalLogger } from "./index.js";
import { PowerLossFs } from "../../../test/helpers/power-loss-fs.js";

const DIR = "/node/telemetry";
const quiet: WalLogger = { warn: () => undefined, error: () => undefined };

type Damage =
  | { kind: "none" }
  | { kind: "delete"; file: number }
  | { kind: "truncate"; file: number; keep: number }
  | { kind: "flip"; file: number; at: number; xor: number }
  | { kind: "rename"; file: number; first: number; last: number }
  | { kind: "base"; bytes: number[] };

const damage: fc.Arbitrary<Damage> = fc.oneof(
  fc.constant({ kind: "none" as const }),
  fc.record({ kind: fc.constant("delete" as const), file: fc.nat() }),
  fc.record({ kind: fc.constant("truncate" as const), file: fc.nat(), keep: fc.double({ min: 0, max: 1, noNaN: true }).map((x) => Math.floor(x * 1000)) }),
  fc.record({ kind: fc.constant("flip" as const), file: fc.nat(), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant("rename" as const), file: fc.nat(), first: fc.integer({ min: 1, max: 60 }), last: fc.integer({ min: 1, max: 60 }) }),
  fc.record({ kind: fc.constant("base" as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 12 }) }),
);

async function build(fs: PowerLossFs, segmentBytes: number, n: number, reclaimTo: number): Promise<{ appended: Map<number, string>; base: number }> {
  const wal = await Wal.open(DIR, { fs, log: quiet, segmentBytes });
  const appended = new Map<number, string>();
  for (let k = 1; k <= n; k++) {
    const event = { k, pad: "p".repeat(k % 50) };
    appended.set(await wal.append(event), JSON.stringify(event));
  }
  const { base } = await wal.reclaim(reclaimTo);
  await wal.close();
  return { appended, base };
}

/** Applies the damage; returns the file it hit. */
async function apply(fs: PowerLossFs, d: Damage): Promise<string> {
  const files = (await fs.list(DIR)).filter((n) => n.startsWith("telemetry.wal") || n === "telemetry.safe_seq").sort();
  const pick = (i: number): string => `${DIR}/${files[i % files.length] ?? "telemetry.wal"}`;
  const bytes = async (p: string): Promise<Buffer> => Buffer.from((await fs.readFile(p)) ?? new Uint8Array(0));
  if (d.kind === "delete") await fs.unlink(pick(d.file)).catch(() => undefined);
  if (d.kind === "truncate") {
    const b = await bytes(pick(d.file));
    await fs.writeFileSynced(pick(d.file), b.subarray(0, Math.min(b.length, Math.floor((d.keep / 1000) * b.length))));
  }
  if (d.kind === "flip") {
    const b = await bytes(pick(d.file));
    if (b.length > 0) b[d.at % b.length] = (b[d.at % b.length] ?? 0) ^ d.xor;
    await fs.writeFileSynced(pick(d.file), b);
  }
  if (d.kind === "rename") {
    const from = pick(d.file);
    const to = `${DIR}/telemetry.wal.${String(Math.min(d.first, d.last)).padStart(20, "0")}-${String(Math.max(d.first, d.last)).padStart(20, "0")}`;
    if (from !== to) await fs.rename(from, to).catch(() => undefined);
  }
  if (d.kind === "base") await fs.writeFileSynced(`${DIR}/telemetry.wal.base`, Uint8Array.from(d.bytes));
  await fs.fsyncDir(DIR);
  return d.kind === "base" ? `${DIR}/telemetry.wal.base` : d.kind === "none" ? "" : pick(d.file);
}

describe("segmented WAL under random damage (fast-check)", () => {
  it("opens cleanly with exactly the appended entries, or fails hard with a cause; the read-only verifier agrees", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 80, max: 400 }), fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }), damage, async (segmentBytes, n, reclaimTo, d) => {
        const fs = new PowerLossFs();
        await fs.mkdirDurable(DIR);
        const { appended, base } = await build(fs, segmentBytes, n, reclaimTo);
        const hit = await apply(fs, d);
        const verdict = await inspectWalDir(DIR, fs);
        let wal: Wal | undefined;
        try {
          wal = await Wal.open(DIR, { fs, log: quiet, segmentBytes });
        } catch (e) {
          expect(e).toBeInstanceOf(WalFailHard);
          // A lost safe point is steady-state evidence only recovery weighs (the verifier shows it as "missing").
          if ((e as WalFailHard).code !== "SAFESEQ_MISSING") expect(verdict.fail_hard).not.toBeNull();
          return;
        }
        const entries = await wal.readFrom(1);
        await wal.close();
        expect(verdict.fail_hard).toBeNull();
        // Only damage to telemetry.wal.base itself may move the start: nothing else may pass for a reclamation.
        if (d.kind !== "base") expect(wal.base).toBe(base);
        // Only a damaged safe point may end the committed run early; no other damage may lose an entry and still open.
        const last = hit.endsWith("/telemetry.safe_seq") ? wal.lastSeq : n;
        expect(last).toBeLessThanOrEqual(n);
        const expected = [...appended].filter(([seq]) => seq > wal.base && seq <= last);
        expect(entries.map((e) => e.seq)).toEqual(expected.map(([seq]) => seq));
        if (!(d.kind === "flip" && hit.endsWith("/telemetry.wal"))) expect(entries.map((e) => JSON.stringify(e.event))).toEqual(expected.map(([, json]) => json));
      }),
      { numRuns: 400 },
    );
  }, 120_000);
});
