import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Wal } from "../wal/index.js";
import { walSource } from "./source.js";

const silent = { warn: () => undefined, error: () => undefined };
const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "exporter-source-"));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

describe("walSource", () => {
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
