import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { codeOf } from "../../../test/helpers/caught.js";
import { openSegmentStore } from "../storage/index.js";
import type { SegmentInfo, SegmentStore } from "../types.js";
import { ledgerSink } from "./inbox-sink.js";
import { openRelayLedger } from "./ledger.js";

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const from = { id: "edge-a", cert_fingerprint: "sha256:" + "cd".repeat(32) };
function segment(text: string): { info: SegmentInfo; bytes: Uint8Array } {
  const bytes = Buffer.from(text);
  return { info: { id: createHash("sha256").update(bytes).digest("hex"), size: bytes.length, kind: "data" }, bytes };
}

async function setup(): Promise<{ root: string; open: () => Promise<{ sink: ReturnType<typeof ledgerSink>; ledger: Awaited<ReturnType<typeof openRelayLedger>>; store: SegmentStore }> }> {
  const root = await mkdtemp(join(tmpdir(), "sink-"));
  dirs.push(root);
  return {
    root,
    open: async () => {
      const ledger = await openRelayLedger(join(root, "edge", "relay", "ledger.lmdb"));
      const store = await openSegmentStore({ dir: join(root, "edge", "segments"), ceilingBytes: 1 << 20 });
      return { sink: ledgerSink(ledger, store), ledger, store };
    },
  };
}

describe("ledgerSink (receiver side)", () => {
  it("attack: a replayed push (a retry after a lost ack, or a second sender) is acknowledged again but never delivered twice to the application", async () => {
    const s = await setup();
    let { sink, ledger } = await s.open();
    const a = segment("alpha");
    const b = segment("beta");
    expect(await sink.accept(a.info, a.bytes, from)).toEqual({ duplicate: false, inbox_seq: 1 });
    expect(await sink.accept(a.info, a.bytes, from)).toEqual({ duplicate: true, inbox_seq: 1 });
    expect(await sink.accept(b.info, b.bytes, { ...from, id: "edge-b" })).toEqual({ duplicate: false, inbox_seq: 2 });
    await ledger.advanceCursor(1);
    await ledger.close();
    ({ sink, ledger } = await s.open()); // a restart between the pushes changes nothing
    expect(await sink.accept(a.info, a.bytes, { ...from, id: "edge-c" })).toEqual({ duplicate: true, inbox_seq: 1 });
    const pending = ledger.inbox(ledger.cursor(), 100);
    expect(pending.map((e) => e.segment_id)).toEqual([b.info.id]);
    expect(ledger.inbox(0, 100).map((e) => [e.seq, e.duplicates])).toEqual([[1, 2], [2, 0]]);
    await ledger.close();
  });

  it("stores the bytes before it records the arrival: the inbox never names a segment the store does not hold", async () => {
    const s = await setup();
    const { sink, ledger, store } = await s.open();
    const a = segment("gamma");
    const order: string[] = [];
    const put = store.put.bind(store);
    store.put = async (...args) => { const r = await put(...args); order.push(`stored ${store.has(a.info.id)}`); return r; };
    const receive = ledger.receive.bind(ledger);
    ledger.receive = async (...args) => { order.push("inbox"); return receive(...args); };
    await sink.accept(a.info, a.bytes, from);
    expect(order).toEqual(["stored true", "inbox"]);
    expect(Buffer.from(await store.get(a.info.id)).toString()).toBe("gamma");
    await ledger.close();
  });

  it("a failed store write records nothing, so the receiver does not acknowledge", async () => {
    const s = await setup();
    const { sink, ledger, store } = await s.open();
    const big = segment("x".repeat((1 << 20) + 1));
    expect(await codeOf(sink.accept(big.info, big.bytes, from))).toBe("STORAGE_CEILING_EXCEEDED/1");
    expect(ledger.inbox(0, 10)).toEqual([]);
    expect(store.has(big.info.id)).toBe(false);
    await ledger.close();
  });
});
