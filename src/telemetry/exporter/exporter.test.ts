import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Wal, walPaths } from "../wal/index.js";
import { Exporter } from "./exporter.js";
import { POS_TMP, readPos, writePos } from "./pos.js";
import { rejectedPath } from "./deadletter.js";
import { SinkRejected } from "./sinks.js";
import { nodeWalFs, readGeneration } from "../wal/index.js";
import type { ExportRecord } from "./record.js";
import type { Sink } from "./sinks.js";

const silent = { warn: () => undefined, error: () => undefined, info: () => undefined };
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

class ArraySink implements Sink {
  readonly name = "array";
  readonly batches: ExportRecord[][] = [];
  send(batch: readonly ExportRecord[]): Promise<void> {
    this.batches.push([...batch]);
    return Promise.resolve();
  }
}

async function walWith(events: Record<string, unknown>[]): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "exporter-unit-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const wal = await Wal.open(dir, { log: silent });
  for (const e of events) await wal.append(e);
  await wal.close();
  return dir;
}

function make(dir: string, sink: Sink, extra: Partial<ConstructorParameters<typeof Exporter>[0]> = {}): Exporter {
  const x = new Exporter({ wal: dir, sink, nodeId: "n", log: silent, ...extra });
  cleanups.push(() => x.close());
  return x;
}

describe("Exporter", () => {
  it("explicit priorities drain first; a batch holds one priority and respects the byte limit (a larger record goes alone)", async () => {
    const dir = await walWith([{ kind: "heartbeat" }, { kind: "x", priority: 9 }, { kind: "error", pad: "z".repeat(500) }, { kind: "error" }, { kind: "error" }, { kind: "decision" }]);
    const sink = new ArraySink();
    const r = await make(dir, sink, { maxInFlightBytes: 200 }).drainOnce();
    expect(r).toMatchObject({ caughtUp: true, pos: 6 });
    expect(sink.batches.map((b) => b.map((x) => x.seq))).toEqual([[2], [3], [4, 5], [6], [1]]);
  });

  it("a failed telemetry.pos write is reported and retried; pos catches up once the disk lets it", async () => {
    const dir = await walWith([{ kind: "a" }, { kind: "b" }]);
    await mkdir(join(dir, POS_TMP)); // open(tmp, "w") now fails with EISDIR
    const x = make(dir, new ArraySink());
    const r = await x.drainOnce();
    expect(r.caughtUp).toBe(false);
    expect(r.error?.message).toMatch(/EISDIR/);
    expect(await readPos(dir)).toEqual({ kind: "missing" });
    await rmdir(join(dir, POS_TMP));
    expect(await x.drainOnce()).toMatchObject({ caughtUp: true, pos: 2 });
    expect(await readPos(dir)).toEqual({ kind: "ok", pos: 2, generation: (await readGeneration(nodeWalFs, dir)).id });
  });

  it("a corrupt telemetry.pos, or one past the committed WAL, means exporting again from seq 1", async () => {
    const dir = await walWith([{ kind: "a" }, { kind: "b" }, { kind: "c" }]);
    for (const bad of [Buffer.from([1, 2, 3]), Buffer.from([99, 0, 0, 0, 0, 0, 0, 0])]) {
      await writeFile(walPaths(dir).pos, bad);
      const sink = new ArraySink();
      const x = make(dir, sink);
      expect(await x.drainOnce()).toMatchObject({ caughtUp: true, pos: 3, confirmed: 3 });
      await x.close();
    }
  });

  it("a stale telemetry.pos.tmp (a drain killed mid-write) is removed when telemetry.pos exists, and left alone without it", async () => {
    const dir = await walWith([{ kind: "a" }, { kind: "b" }]);
    const generation = (await readGeneration(nodeWalFs, dir)).id;
    await writePos(dir, { seq: 2, generation });
    await writeFile(join(dir, POS_TMP), Buffer.alloc(24, 7));
    const idle = make(dir, new ArraySink());
    await idle.drainOnce();
    expect(existsSync(join(dir, POS_TMP))).toBe(false);
  });

  it("without telemetry.pos, a stale telemetry.pos.tmp is never removed at start", async () => {
    const dir = await walWith([]);
    await writeFile(join(dir, POS_TMP), Buffer.alloc(24, 7));
    const x = make(dir, new ArraySink());
    await x.drainOnce();
    expect(await readFile(join(dir, POS_TMP))).toEqual(Buffer.alloc(24, 7));
  });

  it("dead letters go beside the WAL directory (<dir>.rejected.jsonl), never into it", async () => {
    const dir = await walWith([{ kind: "a" }]);
    const refusing: Sink = { name: "refusing", send: () => Promise.reject(new SinkRejected("no", 400, "refusing")) };
    expect(await make(dir, refusing).drainOnce()).toMatchObject({ caughtUp: true, deadLettered: 1 });
    expect(rejectedPath(dir)).toBe(`${dir}.rejected.jsonl`);
    expect((await readFile(rejectedPath(dir), "utf8")).trim().split("\n")).toHaveLength(1);
    expect((await readdir(dir)).sort()).toEqual(["telemetry.pos", "telemetry.safe_seq", "telemetry.wal"]);
  });

  it("one exporter per WAL (EXPORT_LOCKED); one drain at a time per exporter", async () => {
    const dir = await walWith([{ kind: "a" }]);
    let release: (() => void) | undefined;
    const slow: Sink = { name: "slow", send: () => new Promise<void>((r) => { release = r; }) };
    const x = make(dir, slow);
    const first = x.drainOnce();
    await expect(x.drainOnce()).rejects.toThrow(/already running/);
    while (!release) await new Promise((r) => setTimeout(r, 5)); // x holds its lock and is mid-send
    const other = make(dir, new ArraySink());
    await expect(other.drainOnce()).rejects.toMatchObject({ code: "EXPORT_LOCKED" });
    release();
    expect(await first).toMatchObject({ caughtUp: true, pos: 1 });
  });
});
