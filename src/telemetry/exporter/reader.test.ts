import { appendFile, mkdtemp, rm, stat, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Wal, WalFailHard, encodeFrame, walPaths } from "../wal/index.js";
import { WalFileReader, walSource } from "./reader.js";

const silent = { warn: () => undefined, error: () => undefined };
const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "exporter-reader-"));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function collect(r: WalFileReader, from: number, to: number): Promise<number[]> {
  const out: number[] = [];
  for await (const page of r.scan(from, to)) out.push(...page.map((e) => e.seq));
  return out;
}

describe("WalFileReader (read-only, streaming)", () => {
  it("yields exactly what the writer committed, from any seq, with frames larger than its buffer", async () => {
    const dir = await tmp();
    const wal = await Wal.open(dir, { log: silent });
    const events = Array.from({ length: 300 }, (_, i) => ({ i, pad: "x".repeat((i * 37) % 500) }));
    await Promise.all(events.map((e) => wal.append(e)));
    const reader = new WalFileReader(dir, { chunkBytes: 128, stride: 7 });
    expect(await reader.committed()).toBe(300);
    for (const [from, to] of [[1, 300], [150, 160], [299, 300], [8, 8], [1, 1], [201, 200]] as const) {
      const got: unknown[] = [];
      for await (const page of reader.scan(from, to)) got.push(...page);
      const want = (await wal.readFrom(from, Math.max(0, to - from + 1))).map((e) => ({ ...e, bytes: Buffer.byteLength(JSON.stringify(e)) }));
      expect(got, `${from}..${to}`).toEqual(want);
    }
    const odd: number[] = [];
    for await (const page of reader.scan(1, 300, { skip: (seq) => seq % 2 === 0 })) {
      expect(page.length).toBeLessThanOrEqual(512);
      odd.push(...page.map((e) => e.seq));
    }
    expect(odd).toEqual(Array.from({ length: 150 }, (_, i) => 2 * i + 1));
    await wal.close();
  });

  it("reads only up to the safe point, never the frames a writer has not committed yet, and never modifies the files", async () => {
    const dir = await tmp();
    const wal = await Wal.open(dir, { log: silent });
    for (let i = 0; i < 5; i++) await wal.append({ i });
    await wal.close();
    // Phantom frames beyond safe_seq (the S3 window: WAL fsynced, safe point not yet advanced).
    await appendFile(walPaths(dir).wal, Buffer.concat([encodeFrame({ seq: 6, event: { phantom: true } }), Buffer.from([0, 0, 1])]));
    const before = await readFile(walPaths(dir).wal);
    const reader = new WalFileReader(dir, { chunkBytes: 64 });
    const committed = await reader.committed();
    expect(committed).toBe(5);
    expect(await collect(reader, 1, committed)).toEqual([1, 2, 3, 4, 5]);
    expect(await readFile(walPaths(dir).wal)).toEqual(before);
  });

  it("follows a live writer: each scan up to the safe point it read is complete", async () => {
    const dir = await tmp();
    const wal = await Wal.open(dir, { log: silent });
    const reader = new WalFileReader(dir, { chunkBytes: 256, stride: 16 });
    const writing = (async () => {
      for (let i = 0; i < 40; i++) await Promise.all(Array.from({ length: 10 }, (_, k) => wal.append({ i, k, pad: "y".repeat(k * 13) })));
    })();
    let seen = 0;
    while (seen < 400) {
      const committed = await reader.committed();
      const got = await collect(reader, seen + 1, committed);
      expect(got).toEqual(Array.from({ length: committed - seen }, (_, j) => seen + 1 + j));
      seen = committed;
      await new Promise((r) => setImmediate(r));
    }
    await writing;
    await wal.close();
  });

  it("a corrupt committed frame fails hard (WAL_CORRUPT_INVALID_JSON); no safe point means nothing committed", async () => {
    const dir = await tmp();
    expect(await new WalFileReader(dir).committed()).toBe(0);
    const wal = await Wal.open(dir, { log: silent });
    for (let i = 0; i < 3; i++) await wal.append({ i, text: "abcdefgh" });
    await wal.close();
    const bytes = await readFile(walPaths(dir).wal);
    const at = bytes.indexOf("abcdefgh", bytes.indexOf("abcdefgh") + 1);
    bytes[at - 2] = 0x7b; // break the second frame's JSON, keep its length
    await writeFile(walPaths(dir).wal, bytes);
    const size = (await stat(walPaths(dir).wal)).size;
    const err = await collect(new WalFileReader(dir), 1, 3).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WalFailHard);
    expect((err as WalFailHard).code).toBe("WAL_CORRUPT_INVALID_JSON");
    expect((await stat(walPaths(dir).wal)).size).toBe(size);
  });

  it("walSource adapts an open Wal", async () => {
    const dir = await tmp();
    const wal = await Wal.open(dir, { log: silent });
    for (let i = 0; i < 600; i++) void wal.append({ i });
    await wal.append({ last: true });
    const src = walSource(wal, 100);
    expect(await src.committed()).toBe(601);
    const seqs: number[] = [];
    for await (const page of src.scan(250, 601)) seqs.push(...page.map((e) => e.seq));
    expect(seqs).toEqual(Array.from({ length: 352 }, (_, i) => 250 + i));
    await wal.close();
  });
});
