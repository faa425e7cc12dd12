import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { codeOf } from "../../../test/helpers/caught.js";
import type { DeliveryState, SegmentInfo } from "../types.js";
import { HISTORY_LIMIT } from "./ledger-records.js";
import { openRelayLedger, type RelayLedger } from "./ledger.js";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function tempPath(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "ledger-"));
  dirs.push(d);
  return join(d, "edge", "relay", "ledger.lmdb");
}

function fakeClock(start = T0): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => { t += ms; } };
}

const seg = (n: number): SegmentInfo => ({ id: n.toString(16).padStart(64, "0"), size: 10 + n, kind: "data" });
const from = { id: "edge-a", cert_fingerprint: "sha256:" + "ab".repeat(32) };
const ERR = { code: "RELAY_PEER_UNREACHABLE", message: "connection refused" };

describe("relay ledger", () => {
  it("schedules a segment to each peer, and a second enqueue of the same content adds only new peers", async () => {
    const l = await openRelayLedger(await tempPath(), { clock: fakeClock() });
    const first = await l.schedule(seg(1), ["b", "c"], "all_peers");
    expect(first.created).toBe(true);
    expect(first.added).toEqual(["b", "c"]);
    const again = await l.schedule(seg(1), ["b", "d"], "all_peers");
    expect(again).toMatchObject({ created: false, added: ["d"] });
    expect(l.segment(seg(1).id)?.peers).toEqual(["b", "c", "d"]);
    expect(l.due(T0, 10).map((d) => d.peer_id).sort()).toEqual(["b", "c", "d"]);
    await l.close();
  });

  it("all_peers: delivered only once every peer acked; one_peer: at the first ack", async () => {
    const l = await openRelayLedger(await tempPath(), { clock: fakeClock() });
    await l.schedule(seg(1), ["b", "c"], "all_peers");
    await l.schedule(seg(2), ["b", "c"], "one_peer");
    for (const s of [1, 2]) await l.begin(seg(s).id, "b");
    expect((await l.ack(seg(1).id, "b", false)).newlyDelivered).toBe(false);
    expect((await l.ack(seg(2).id, "b", false)).newlyDelivered).toBe(true);
    await l.begin(seg(1).id, "c");
    const r = await l.ack(seg(1).id, "c", true);
    expect(r.newlyDelivered).toBe(true);
    expect(r.delivery).toMatchObject({ state: "acked", duplicate_ack: true, attempts: 1 });
    expect(l.summary().delivered_segments).toBe(2);
    await l.close();
  });

  it("a failed attempt counts, waits for its next attempt, and keeps a bounded history", async () => {
    const clock = fakeClock();
    const l = await openRelayLedger(await tempPath(), { clock });
    await l.schedule(seg(1), ["b"], "one_peer");
    for (let i = 0; i < HISTORY_LIMIT + 3; i++) {
      await l.begin(seg(1).id, "b");
      await l.fail(seg(1).id, "b", ERR, clock.now() + 1000);
      expect(l.due(clock.now(), 10)).toEqual([]);
      clock.advance(1000);
      expect(l.due(clock.now(), 10)).toHaveLength(1);
    }
    const d = l.delivery(seg(1).id, "b");
    expect(d).toMatchObject({ state: "failed", attempts: HISTORY_LIMIT + 3, last_error: ERR });
    expect(d?.history).toHaveLength(HISTORY_LIMIT);
    expect(d?.history.every((h) => h.outcome === "failed" && h.completed !== null)).toBe(true);
    await l.close();
  });

  it("acked and deadletter are terminal until an operator retry", async () => {
    const l = await openRelayLedger(await tempPath(), { clock: fakeClock() });
    await l.schedule(seg(1), ["b", "c"], "all_peers");
    await l.begin(seg(1).id, "b");
    await l.ack(seg(1).id, "b", false);
    await l.begin(seg(1).id, "c");
    await l.fail(seg(1).id, "c", ERR, null);
    for (const p of ["b", "c"]) {
      expect(await codeOf(l.begin(seg(1).id, p))).toBe("DELIVERY_STATE_CONFLICT/1");
    }
    expect(await codeOf(l.retry(seg(1).id, "b"))).toBe("DEADLETTER_NOT_FOUND/1");
    const r = await l.retry(seg(1).id, "c");
    expect(r).toMatchObject({ state: "scheduled", attempts: 0, operator_retries: 1, deadlettered_at: null });
    expect(r.history).toHaveLength(1);
    await l.close();
  });

  it("close and reopen keeps every record; an attempt in flight at the crash comes back failed and counted", async () => {
    const path = await tempPath();
    const l = await openRelayLedger(path, { clock: fakeClock() });
    await l.schedule(seg(1), ["b", "c"], "one_peer");
    await l.begin(seg(1).id, "b");
    await l.receive(seg(7), from);
    await l.advanceCursor(1);
    const before = l.deliveriesWhere().sort((a, b) => a.peer_id.localeCompare(b.peer_id));
    await l.close();
    const again = await openRelayLedger(path, { clock: fakeClock(T0 + 5000) });
    expect(again.recovered.map((d) => [d.peer_id, d.state, d.attempts, d.last_error?.code])).toEqual([["b", "failed", 1, "RELAY_INTERRUPTED"]]);
    expect(again.delivery(seg(1).id, "c")).toEqual(before[1]);
    expect(again.delivery(seg(1).id, "b")?.history.at(-1)?.outcome).toBe("interrupted");
    expect(again.inbox(0, 10).map((e) => e.segment_id)).toEqual([seg(7).id]);
    expect(again.cursor()).toBe(1);
    expect(again.due(T0 + 5000, 10)).toHaveLength(2);
    await again.close();
  });

  it("a new ledger appears only complete: a file torn by a cut during creation is a `.creating` leftover, removed at the next open", async () => {
    const path = await tempPath();
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path + ".creating", Buffer.alloc(8192)); // zero-filled meta pages, as a cut before the first commit leaves them
    await writeFile(path + ".creating-lock", Buffer.alloc(16));
    const l = await openRelayLedger(path);
    expect((await readdir(dirname(path))).sort()).toEqual([basename(path), basename(path) + "-lock"]);
    await l.schedule(seg(1), ["b"], "one_peer");
    await l.close();
    const again = await openRelayLedger(path);
    expect(again.delivery(seg(1).id, "b")?.state).toBe("scheduled");
    await again.close();
  });

  it("the inbox gives each segment id exactly one sequence number, however often and from whomever it is pushed", async () => {
    await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 30 }), async (pushes) => {
      const path = await tempPath();
      let l = await openRelayLedger(path, { clock: fakeClock() });
      const firstSeq = new Map<number, number>();
      for (const [i, n] of pushes.entries()) {
        if (i === Math.floor(pushes.length / 2)) { await l.close(); l = await openRelayLedger(path); }
        const r = await l.receive(seg(n), { ...from, id: i % 2 === 0 ? "edge-a" : "edge-b" });
        expect(r.duplicate).toBe(firstSeq.has(n));
        if (!firstSeq.has(n)) firstSeq.set(n, r.inbox_seq);
        expect(r.inbox_seq).toBe(firstSeq.get(n));
      }
      const inbox = l.inbox(0, 1000);
      expect(inbox.map((e) => e.segment_id)).toEqual([...firstSeq.keys()].map((n) => seg(n).id));
      expect(inbox.map((e) => e.seq)).toEqual(inbox.map((_, i) => i + 1));
      await l.close();
    }), { numRuns: 15 });
  });

  it("a release push of a segment first pushed as data gets its own entry once; later pushes of either kind are duplicates", async () => {
    const l = await openRelayLedger(await tempPath(), { clock: fakeClock() });
    const s = seg(3);
    expect(await l.receive({ ...s, kind: "data" }, from)).toEqual({ duplicate: false, inbox_seq: 1 });
    expect(await l.receive({ ...s, kind: "release" }, from)).toEqual({ duplicate: false, inbox_seq: 2 });
    expect(await l.receive({ ...s, kind: "release" }, from)).toEqual({ duplicate: true, inbox_seq: 2 });
    expect(await l.receive({ ...s, kind: "data" }, from)).toEqual({ duplicate: true, inbox_seq: 1 });
    const r = seg(4);
    expect(await l.receive({ ...r, kind: "release" }, from)).toEqual({ duplicate: false, inbox_seq: 3 });
    expect(await l.receive({ ...r, kind: "data" }, from)).toEqual({ duplicate: true, inbox_seq: 3 });
    expect(l.inbox(0, 10).map((e) => [e.seq, e.kind])).toEqual([[1, "data"], [2, "release"], [3, "release"]]);
    await l.close();
  });

  it("the application cursor only moves forward and never past what the inbox handed out", async () => {
    const l = await openRelayLedger(await tempPath());
    await l.receive(seg(1), from);
    await l.receive(seg(2), from);
    expect(await codeOf(l.advanceCursor(3))).toBe("INBOX_CURSOR_INVALID/1");
    expect(await l.advanceCursor(2)).toBe(2);
    expect(await codeOf(l.advanceCursor(1))).toBe("INBOX_CURSOR_INVALID/1");
    expect(l.inbox(l.cursor(), 10)).toEqual([]);
    await l.close();
  });

  it("releasable: the store may drop a segment only once every role it has here is finished (sent: delivered, nothing pending; received: consumed)", async () => {
    const l = await openRelayLedger(await tempPath());
    expect(l.releasable(seg(9).id)).toBe(false); // unknown: a put whose record is still being written
    expect(l.references(seg(9).id)).toBe(false);
    // Only received: evictable once the cursor is at or past it.
    await l.receive(seg(1), from);
    expect(l.releasable(seg(1).id)).toBe(false);
    await l.advanceCursor(1);
    expect(l.releasable(seg(1).id)).toBe("lru_consumed");
    // Only sent: once delivered and no other peer waits (one_peer leaves c its copy).
    await l.schedule(seg(2), ["b", "c"], "one_peer");
    await l.begin(seg(2).id, "b");
    await l.ack(seg(2).id, "b", false);
    expect(l.releasable(seg(2).id)).toBe(false);
    await l.begin(seg(2).id, "c");
    await l.ack(seg(2).id, "c", false);
    expect(l.releasable(seg(2).id)).toBe("lru_ceiling");
    // Both (an arrival this node relays on): delivered is not enough while the application has not consumed it.
    await l.receive(seg(3), from);
    await l.schedule(seg(3), ["b"], "one_peer");
    await l.begin(seg(3).id, "b");
    await l.ack(seg(3).id, "b", false);
    expect(l.releasable(seg(3).id)).toBe(false);
    await l.advanceCursor(2);
    expect(l.releasable(seg(3).id)).toBe("lru_ceiling");
    // Consumed but still owed to a peer: kept.
    await l.receive(seg(4), from);
    await l.advanceCursor(3);
    await l.schedule(seg(4), ["b"], "one_peer");
    expect(l.releasable(seg(4).id)).toBe(false);
    expect([1, 2, 3, 4].every((n) => l.references(seg(n).id))).toBe(true);
    await l.close();
  });

  it("purge without force is a dry run; with force it removes the dead letters, logs it, and releases orphaned segments", async () => {
    const l = await openRelayLedger(await tempPath(), { clock: fakeClock() });
    await l.schedule(seg(1), ["b", "c"], "one_peer");
    await l.schedule(seg(2), ["b"], "one_peer");
    for (const [s, p] of [[1, "b"], [1, "c"], [2, "b"]] as const) await l.deadletter(seg(s).id, p, ERR);
    const dry = await l.purge({ peer_id: "b", force: false });
    expect(dry.dry_run).toBe(true);
    expect(dry.purged.map((d) => d.segment_id).sort()).toEqual([seg(1).id, seg(2).id]);
    expect(dry.released_segments).toEqual([{ segment_id: seg(2).id, delivered: false }]);
    expect(l.deadletters(10)).toHaveLength(3);
    expect(l.purgeLog()).toEqual([]);
    const done = await l.purge({ peer_id: "b", force: true });
    expect(done).toEqual({ ...dry, dry_run: false });
    expect(l.deadletters(10).map((d) => d.peer_id)).toEqual(["c"]);
    expect(l.segment(seg(2).id)).toBeUndefined();
    expect(l.segment(seg(1).id)).toBeDefined();
    expect(l.purgeLog()).toMatchObject([{ reason: "operator", count: 2 }]);
    await l.close();
  });

  it("retention purges only dead letters older than the period, and records it", async () => {
    const clock = fakeClock();
    // Time really passes here: the monotonic clock moves with the wall clock (no jump).
    const l = await openRelayLedger(await tempPath(), { clock, monotonic: () => clock.now() });
    await l.schedule(seg(1), ["b"], "one_peer");
    await l.schedule(seg(2), ["b"], "one_peer");
    await l.deadletter(seg(1).id, "b", ERR);
    clock.advance(3_600_000);
    await l.deadletter(seg(2).id, "b", ERR);
    clock.advance(1_000);
    const r = await l.purgeExpired(3_600_000);
    expect(r.purged.map((d) => d.segment_id)).toEqual([seg(1).id]);
    expect(l.deadletters(10).map((d) => d.segment_id)).toEqual([seg(2).id]);
    expect(l.purgeLog()).toMatchObject([{ reason: "retention", count: 1, items: [{ segment_id: seg(1).id, peer_id: "b" }] }]);
    expect((await l.purgeExpired(3_600_000)).purged).toEqual([]);
    expect(l.purgeLog()).toHaveLength(1);
    await l.close();
  });
  it("retention purges nothing in a sweep after the wall clock jumped ahead of the monotonic clock; the next sweep measures from there", async () => {
    const clock = fakeClock();
    let mono = 0;
    const l = await openRelayLedger(await tempPath(), { clock, monotonic: () => mono });
    await l.schedule(seg(1), ["b"], "one_peer");
    await l.deadletter(seg(1).id, "b", ERR);
    clock.advance(30 * 86_400_000); // the wall clock steps a month; the monotonic one does not
    expect(await l.purgeExpired(86_400_000)).toMatchObject({ purged: [], skipped: { reason: "clock_jump" } });
    expect(l.deadletters(10)).toHaveLength(1);
    mono += 60_000; // a real minute later the clock still says a month on: it moved for real
    clock.advance(60_000);
    expect((await l.purgeExpired(86_400_000)).purged.map((d) => d.segment_id)).toEqual([seg(1).id]);
    await l.close();
  });
});

// ------------------------------------------------------------------ model test

type Op =
  | { op: "enqueue"; s: number; peers: string[] }
  | { op: "begin" | "ack" | "failRetry" | "failDead" | "deadletter" | "retry" | "abort"; s: number; p: string }
  | { op: "purge"; s: number | undefined; force: boolean }
  | { op: "reopen" };

interface ModelDelivery { state: DeliveryState; attempts: number }

const PEERS = ["b", "c", "d"];
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("enqueue" as const), s: fc.integer({ min: 1, max: 3 }), peers: fc.subarray(PEERS, { minLength: 1 }) }),
  fc.record({ op: fc.constantFrom("begin", "begin", "ack", "failRetry", "failDead", "deadletter", "retry", "abort") as fc.Arbitrary<"begin">, s: fc.integer({ min: 1, max: 3 }), p: fc.constantFrom(...PEERS) }),
  fc.record({ op: fc.constant("purge" as const), s: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }), force: fc.boolean() }),
  fc.constant({ op: "reopen" as const }),
);

/** The model's answer to one op: the next state of the touched delivery, or "conflict" when the ledger must refuse. */
function modelStep(m: Map<string, ModelDelivery>, o: Op): void | "conflict" {
  if (o.op === "reopen") {
    for (const d of m.values()) if (d.state === "inflight") { d.state = "failed"; d.attempts += 1; }
    return;
  }
  if (o.op === "enqueue") {
    for (const p of o.peers) if (!m.has(`${o.s}/${p}`)) m.set(`${o.s}/${p}`, { state: "scheduled", attempts: 0 });
    return;
  }
  if (o.op === "purge") {
    if (!o.force) return;
    for (const [k, d] of m) if (d.state === "deadletter" && (o.s === undefined || k.startsWith(`${o.s}/`))) m.delete(k);
    return;
  }
  const d = m.get(`${o.s}/${o.p}`);
  const from: Record<typeof o.op, DeliveryState[]> = {
    begin: ["scheduled", "failed"], ack: ["inflight"], failRetry: ["inflight"], failDead: ["inflight"],
    deadletter: ["scheduled", "failed"], retry: ["deadletter"], abort: ["inflight"],
  };
  if (d === undefined || !from[o.op].includes(d.state)) return "conflict";
  switch (o.op) {
    case "begin": d.state = "inflight"; break;
    case "ack": d.state = "acked"; d.attempts += 1; break;
    case "failRetry": d.state = "failed"; d.attempts += 1; break;
    case "failDead": d.state = "deadletter"; d.attempts += 1; break;
    case "deadletter": d.state = "deadletter"; break;
    case "retry": d.state = "scheduled"; d.attempts = 0; break;
    case "abort": d.state = d.attempts === 0 ? "scheduled" : "failed"; break;
  }
}

async function ledgerStep(l: RelayLedger, path: string, o: Op, now: number): Promise<RelayLedger> {
  const id = (s: number): string => seg(s).id;
  switch (o.op) {
    case "reopen": await l.close(); return openRelayLedger(path);
    case "enqueue": await l.schedule(seg(o.s), o.peers, "all_peers"); return l;
    case "purge": await l.purge({ force: o.force, ...(o.s === undefined ? {} : { segment_id: id(o.s) }) }); return l;
    case "begin": await l.begin(id(o.s), o.p); return l;
    case "ack": await l.ack(id(o.s), o.p, false); return l;
    case "failRetry": await l.fail(id(o.s), o.p, ERR, now + 10); return l;
    case "failDead": await l.fail(id(o.s), o.p, ERR, null); return l;
    case "deadletter": await l.deadletter(id(o.s), o.p, ERR); return l;
    case "retry": await l.retry(id(o.s), o.p); return l;
    case "abort": await l.abort(id(o.s), o.p); return l;
  }
}

describe("relay ledger state machine (model test)", () => {
  it("random sequences of enqueue/begin/ack/fail/deadletter/retry/purge/reopen agree with a simple model", async () => {
    await fc.assert(fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 40 }), async (ops) => {
      const path = await tempPath();
      let l = await openRelayLedger(path);
      const model = new Map<string, ModelDelivery>();
      for (const o of ops) {
        const expected = modelStep(model, o);
        const code = await codeOf(ledgerStep(l, path, o, Date.now()).then((next) => { l = next; }));
        expect(code).toBe(expected === "conflict" ? (o.op === "retry" ? "DEADLETTER_NOT_FOUND/1" : "DELIVERY_STATE_CONFLICT/1") : "NO_ERROR");
        const actual = Object.fromEntries(l.deliveriesWhere().map((d) => [`${parseInt(d.segment_id, 16)}/${d.peer_id}`, { state: d.state, attempts: d.attempts }]));
        expect(actual).toEqual(Object.fromEntries(model));
        const waiting = [...model.values()].filter((d) => d.state === "scheduled" || d.state === "failed").length;
        expect(l.due(Number.MAX_SAFE_INTEGER, 1000)).toHaveLength(waiting);
      }
      await l.close();
    }), { numRuns: 25 });
  }, 60_000);
});
