import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PowerLossFs } from "../../../test/helpers/power-loss-fs.js";
import { EdgeError } from "../errors.js";
import { SegmentAssembler, openSegmentStore } from "./index.js";
import { verifiedIdOf } from "./verified.js";

const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");
const clock = { now: () => Date.parse("2026-01-02T03:04:05Z") };
const DIR = "/state/edge/segments";

async function store(): Promise<{ fs: PowerLossFs; s: Awaited<ReturnType<typeof openSegmentStore>> }> {
  const fs = new PowerLossFs();
  await fs.mkdirDurable("/state");
  return { fs, s: await openSegmentStore({ dir: DIR, ceilingBytes: 1 << 20, fs, clock }) };
}

function assemble(bytes: Uint8Array, id: string, chunk = 7): { digest: string; bytes: Buffer | undefined } {
  const a = new SegmentAssembler(bytes.byteLength);
  for (let i = 0; i < bytes.byteLength; i += chunk) expect(a.append(bytes.subarray(i, i + chunk))).toBe(true);
  return a.finish(id);
}

describe("SegmentAssembler and the store's verified put", () => {
  const body = new Uint8Array(1000).map((_, i) => (i * 31) & 0xff);
  const id = sha(body);

  it("assembles chunks into exactly the bytes, verified for their id, and the store keeps them under that id", async () => {
    const got = assemble(body, id);
    expect(got.digest).toBe(id);
    expect(got.bytes !== undefined && Buffer.from(body).equals(got.bytes)).toBe(true);
    expect(verifiedIdOf(got.bytes as Buffer)).toBe(id);
    const { fs, s } = await store();
    const r = await s.put(got.bytes as Buffer, "data");
    expect(r).toMatchObject({ created: true, info: { id, size: 1000, kind: "data" } });
    // Re-hashed at open: what was written is exactly those bytes.
    const again = await openSegmentStore({ dir: DIR, ceilingBytes: 1 << 20, fs: fs.crash(), clock });
    expect(Buffer.from(await again.get(id)).equals(Buffer.from(body))).toBe(true);
    expect(again.evictions()).toEqual([]);
  });

  it("refuses to verify mismatching bytes: another id, a short body, or an overlong one", () => {
    const tampered = Buffer.from(body);
    tampered[500] = (tampered[500] ?? 0) ^ 1;
    const bad = assemble(tampered, id);
    expect(bad.bytes).toBeUndefined();
    expect(bad.digest).toBe(sha(tampered));
    const short = new SegmentAssembler(1000);
    short.append(body.subarray(0, 999));
    expect(short.finish(sha(body.subarray(0, 999))).bytes).toBeUndefined();
    const long = new SegmentAssembler(10);
    expect(long.append(body.subarray(0, 11))).toBe(false);
    expect(() => long.finish(id)).not.toThrow();
    expect(() => long.finish(id)).toThrow(/twice/);
  });

  it("bytes that are not an assembler's verified buffer are copied and hashed by the store: their own digest names them", async () => {
    const { s } = await store();
    const verified = assemble(body, id).bytes as Buffer;
    const lookalike = Buffer.from(verified); // same bytes, but not the verified buffer
    expect(verifiedIdOf(lookalike)).toBeUndefined();
    lookalike[0] = (lookalike[0] ?? 0) ^ 0xff;
    const r = await s.put(lookalike, "data");
    expect(r.info.id).toBe(sha(lookalike));
    expect(s.has(id)).toBe(false);
  });

  it("a verified buffer modified before the put (a caller bug) is never served: get answers SEGMENT_CORRUPT", async () => {
    const { s } = await store();
    const verified = assemble(body, id).bytes as Buffer;
    verified[0] = (verified[0] ?? 0) ^ 0xff;
    await s.put(verified, "data");
    const e = await s.get(id).then(() => undefined, (x: unknown) => x);
    expect(e instanceof EdgeError && e.code).toBe("SEGMENT_CORRUPT");
  });
});
