import { createHash, randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { SegmentAssembler } from "../../storage/index.js";
import { verifiedIdOf } from "../../storage/verified.js";
import { HashWorker } from "./hash-worker.js";

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** Feeds `bytes` to an assembler in chunks of uneven sizes, as HTTP/2 DATA events come. */
function feed(asm: SegmentAssembler, bytes: Buffer): void {
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = Math.min(bytes.length - at, 1 + ((i * 7919) % 20_000));
    expect(asm.append(bytes.subarray(at, at + n))).toBe(true);
    at += n;
  }
}

describe("hashing received segments on a worker thread", () => {
  const workers: HashWorker[] = [];
  const worker = (): HashWorker => {
    const w = new HashWorker();
    workers.push(w);
    return w;
  };
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
  });

  it("the worker's digest of an assembled segment is its SHA-256, and only matching bytes come out verified", async () => {
    const w = worker();
    const bytes = randomBytes(3 * 1024 * 1024 + 17);
    const asm = new SegmentAssembler(bytes.length, w.open(bytes.length));
    feed(asm, bytes);
    const got = await asm.settle(sha(bytes));
    expect(got.digest).toBe(sha(bytes));
    expect(got.bytes !== undefined && got.bytes.equals(bytes)).toBe(true);
    expect(verifiedIdOf(got.bytes as Buffer)).toBe(sha(bytes));

    const tampered = Buffer.from(bytes);
    tampered[2_000_000] = (tampered[2_000_000] ?? 0) ^ 1;
    const bad = new SegmentAssembler(tampered.length, w.open(tampered.length));
    feed(bad, tampered);
    const refused = await bad.settle(sha(bytes));
    expect(refused.digest).toBe(sha(tampered));
    expect(refused.bytes).toBeUndefined();
  });

  it("a short body is never verified, even when its digest is the expected one", async () => {
    const w = worker();
    const bytes = randomBytes(600 * 1024);
    const asm = new SegmentAssembler(bytes.length + 1, w.open(bytes.length + 1));
    feed(asm, bytes);
    expect((await asm.settle(sha(bytes))).bytes).toBeUndefined();
  });

  it("segments hashed at once on one worker each get their own digest", async () => {
    const w = worker();
    const all = Array.from({ length: 6 }, (_, i) => randomBytes(300_000 + i * 70_000));
    const asms = all.map((b) => new SegmentAssembler(b.length, w.open(b.length)));
    // Interleave the chunks of all six, as concurrent streams would.
    for (let at = 0; all.some((b) => at < b.length); at += 16_384) {
      all.forEach((b, i) => {
        if (at < b.length) asms[i]?.append(b.subarray(at, at + 16_384));
      });
    }
    const digests = await Promise.all(asms.map((a, i) => a.settle(sha(all[i] as Buffer))));
    expect(digests.map((d) => d.digest)).toEqual(all.map(sha));
  });

  it("finish() refuses an assembler whose hash runs on the worker (settle is the way), and settle twice throws", async () => {
    const w = worker();
    const bytes = randomBytes(1000);
    const asm = new SegmentAssembler(bytes.length, w.open(bytes.length));
    asm.append(bytes);
    expect(() => asm.finish(sha(bytes))).toThrow(/settle/);
    await asm.settle(sha(bytes));
    await expect(asm.settle(sha(bytes))).rejects.toThrow(/twice/);
  });

  it("digests owed when the worker stops reject (nothing is verified); after close, open hands back no hasher", async () => {
    const w = worker();
    const bytes = randomBytes(512 * 1024);
    const asm = new SegmentAssembler(bytes.length, w.open(bytes.length));
    feed(asm, bytes);
    const owed = asm.settle(sha(bytes)).then(() => "verified", (e: unknown) => String(e));
    await w.close();
    expect(await owed).toMatch(/closed|stopped/);
    expect(w.open(1024)).toBeUndefined();
  });
});
