/**
 * The WAL exporter against real HTTP receivers on loopback and real WAL files.
 * The receivers are ours (test/helpers/exporter-receivers.ts): an OTLP/HTTP JSON logs
 * receiver implementing and validating that contract, and a test server
 * implementing the control plane's documented POST /v1/events contract. No
 * OpenTelemetry Collector or control plane runs here.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Exporter, OtlpHttpLogsSink, Wal, nodeWalFs, priorityOf, readGeneration, readPos } from "../../src/telemetry/index.js";
import type { ExporterOptions } from "../../src/telemetry/index.js";
import { ControlPlaneEventsSink, FanoutSink, SinkUnavailable } from "../../src/telemetry/exporter/sinks.js";
import { PRIORITY } from "../../src/telemetry/exporter/priority.js";
import { rejectedPath } from "../../src/telemetry/exporter/deadletter.js";
import type { RejectedLine } from "../../src/telemetry/exporter/deadletter.js";
import { firstArrivals, startControlPlaneEventsContractServer, startOtlpJsonLogsReceiver } from "../helpers/exporter-receivers.js";
import type { Delivered, ReceiverBase } from "../helpers/exporter-receivers.js";

const silent = { warn: () => undefined, error: () => undefined, info: () => undefined };
const NODE = "node-7";
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "exporter-http-"));
  cleanups.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

async function track<R extends ReceiverBase>(r: Promise<R>): Promise<R> {
  const rr = await r;
  cleanups.push(() => rr.close());
  return rr;
}

/** Deterministic mixed traffic: errors, decisions, lifecycle and other, interleaved. */
function mixedEvent(i: number): Record<string, unknown> {
  switch (i % 7) {
    case 0: return { kind: "error", i, message: "tool crashed" };
    case 1: case 2: return { type: "ai.policy.decision", i, decision: i % 2 ? "allow" : "deny", timestamp: new Date(1_700_000_000_000 + i).toISOString() };
    case 3: return { type: "ai.deployment.lifecycle", i, phase: "polled" };
    case 4: return { kind: "lifecycle", i };
    default: return { kind: "heartbeat", i };
  }
}

async function fill(dir: string, events: readonly Record<string, unknown>[]): Promise<void> {
  const wal = await Wal.open(dir, { log: silent });
  try {
    await Promise.all(events.map((e) => wal.append(e)));
  } finally {
    await wal.close();
  }
}

function exporter(o: Partial<ExporterOptions> & Pick<ExporterOptions, "wal" | "sink">): Exporter {
  const x = new Exporter({ nodeId: NODE, batchSize: 64, retry: { baseMs: 10, maxMs: 80, jitter: 0.5 }, pollMs: 10, log: silent, ...o });
  cleanups.push(() => x.close());
  return x;
}

async function until(cond: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function startRun(x: Exporter): { stop: () => Promise<void> } {
  const ac = new AbortController();
  const running = x.run(ac.signal);
  return { stop: async () => { ac.abort(); await running; } };
}

function seqSet(arrivals: readonly Delivered[]): Set<number> {
  return new Set(arrivals.map((a) => a.seq));
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

async function rejectedLines(dir: string): Promise<RejectedLine[]> {
  try {
    return (await readFile(rejectedPath(dir), "utf8")).trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as RejectedLine);
  } catch {
    return [];
  }
}

describe("exporter → OTLP/HTTP JSON (our receiver implementing the contract)", () => {
  it("delivers every committed entry with autonomy.seq, autonomy.node_id and event.name; pos = committed; nothing resent", async () => {
    const dir = await tmp();
    const rx = await track(startOtlpJsonLogsReceiver());
    const events = Array.from({ length: 300 }, (_, i) => mixedEvent(i));
    await fill(dir, events);
    const x = exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url: rx.url, serviceName: NODE, timeoutMs: 5_000 }) });
    const r = await x.drainOnce();
    expect(r).toMatchObject({ caughtUp: true, confirmed: 300, pos: 300, committed: 300, backlog: 0 });
    expect(rx.violations).toEqual([]);
    expect(rx.arrivals).toHaveLength(300);
    expect([...seqSet(rx.arrivals)].sort((a, b) => a - b)).toEqual(range(300));
    for (const a of rx.arrivals) {
      expect(a.nodeId).toBe(NODE);
      expect(a.event).toEqual(events[a.seq - 1]);
    }
    const names = new Map(rx.arrivals.map((a) => [a.seq, a.eventName]));
    expect([names.get(1), names.get(2), names.get(4), names.get(5), names.get(6)]).toEqual(["ai.agent.error", "ai.policy.decision", "ai.deployment.lifecycle", "ai.agent.lifecycle", "ai.telemetry.heartbeat"]);
    expect(await readPos(dir)).toEqual({ kind: "ok", pos: 300, generation: (await readGeneration(nodeWalFs, dir)).id });
    expect(x.status()).toMatchObject({ pos: 300, backlog: 0, confirmed: 300, dead_lettered: 0, bytes_in_flight: 0 });
    const again = await x.drainOnce();
    expect(again).toMatchObject({ caughtUp: true, confirmed: 0, batches: 0 });
    // One batch never mixes levels: ceil(count / batchSize) requests per priority level.
    const perLevel = [0, 1, 2, 3].map((l) => events.filter((e) => priorityOf(e) === l).length);
    expect(rx.requests).toBe(perLevel.reduce((a, n) => a + Math.ceil(n / 64), 0));
  });

  it("after an outage (503 for a while) the backlog drains errors, then decisions, then lifecycle, then the rest", async () => {
    const dir = await tmp();
    const rx = await track(startOtlpJsonLogsReceiver());
    let down = true;
    rx.fault = () => (down ? { status: 503, retryAfter: "0" } : undefined);
    const x = exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url: rx.url, serviceName: NODE, timeoutMs: 5_000 }), batchSize: 40 });
    const run = startRun(x);
    // The WAL fills while the collector is down, in a scrambled order of priorities.
    const wal = await Wal.open(dir, { log: silent });
    const events = Array.from({ length: 700 }, (_, i) => mixedEvent((i * 263) % 700));
    for (let i = 0; i < events.length; i += 50) await Promise.all(events.slice(i, i + 50).map((e) => wal.append(e)));
    await until(() => rx.requests >= 3, "failed attempts during the outage");
    expect(x.status().pos).toBe(0);
    down = false;
    await until(() => x.status().pos === 700, "drain after recovery");
    await run.stop();
    await wal.close();
    const order = firstArrivals(rx.arrivals).map((a) => priorityOf(a.event));
    expect(order).toHaveLength(700);
    // Non-increasing priority in order of first arrival: every error before any decision before any lifecycle before the rest.
    for (let i = 1; i < order.length; i++) expect(order[i] ?? 0, `arrival ${i}`).toBeLessThanOrEqual(order[i - 1] ?? 0);
    expect(order[0]).toBe(PRIORITY.error);
    expect(order[order.length - 1]).toBe(PRIORITY.other);
    expect(x.status().retries).toBeGreaterThanOrEqual(3);
  });

  it("a slow collector (answers after the client's timeout) and 5xx answers cost only delay: nothing dropped", async () => {
    const dir = await tmp();
    const rx = await track(startOtlpJsonLogsReceiver());
    rx.fault = (n) => (n <= 3 ? { delayMs: 400 } : n <= 6 ? { status: [500, 502, 503][n - 4] ?? 500 } : n === 7 ? { status: 429, retryAfter: "0" } : n === 8 ? { status: 408 } : undefined);
    await fill(dir, Array.from({ length: 250 }, (_, i) => mixedEvent(i)));
    const x = exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url: rx.url, serviceName: NODE, timeoutMs: 150 }) });
    const run = startRun(x);
    await until(() => x.status().pos === 250, "drain through timeouts and 5xx");
    await run.stop();
    expect(seqSet(rx.arrivals)).toEqual(new Set(range(250)));
    const s = x.status();
    expect(s.retries).toBeGreaterThanOrEqual(8);
    expect(s.dead_lettered).toBe(0);
    expect(s.last_error?.message).toMatch(/408|429|50[023]|within 150 ms/);
    expect(await rejectedLines(dir)).toEqual([]);
  });

  it("the WAL keeps accepting appends while the collector hangs: appends never wait on export", async () => {
    const rx = await track(startOtlpJsonLogsReceiver());
    rx.fault = () => ({ hang: true });
    const timeAppends = async (dir: string): Promise<{ latencies: number[]; seqs: number[] }> => {
      const wal = await Wal.open(dir, { log: silent });
      const latencies: number[] = [];
      const seqs: number[] = [];
      for (let round = 0; round < 30; round++) {
        const t0 = performance.now();
        seqs.push(...(await Promise.all(Array.from({ length: 50 }, (_, k) => wal.append(mixedEvent(round * 50 + k))))));
        latencies.push(performance.now() - t0);
      }
      await wal.close();
      return { latencies, seqs };
    };
    const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
    const baseline = await timeAppends(await tmp());
    const dir = await tmp();
    const x = exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url: rx.url, serviceName: NODE, timeoutMs: 60_000 }) });
    const run = startRun(x);
    const during = await timeAppends(dir);
    await until(() => x.status().records_in_flight > 0, "a request in flight");
    const s = x.status();
    await run.stop();
    expect(during.seqs).toEqual(range(1500));
    expect(s.pos).toBe(0);
    expect(s.bytes_in_flight).toBeGreaterThan(0);
    console.log(`[exporter] 50-append group commit: median ${median(baseline.latencies).toFixed(2)} ms without an exporter, ${median(during.latencies).toFixed(2)} ms with one stuck on a hung collector`);
    // Loose: the exporter shares the event loop, never the append path.
    expect(median(during.latencies)).toBeLessThan(median(baseline.latencies) * 4 + 25);
  });

  it("a poison record (400) is isolated by splitting the batch and dead-lettered with the reason; every other record is delivered", async () => {
    const dir = await tmp();
    const rx = await track(startOtlpJsonLogsReceiver());
    const events = Array.from({ length: 120 }, (_, i) => ({ ...mixedEvent(i), ...(i + 1 === 37 || i + 1 === 80 ? { poison: true } : {}) }));
    await fill(dir, events);
    const x = exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url: rx.url, serviceName: NODE, timeoutMs: 5_000 }), batchSize: 50 });
    const r = await x.drainOnce();
    expect(r).toMatchObject({ caughtUp: true, pos: 120, deadLettered: 2 });
    expect(seqSet(rx.arrivals)).toEqual(new Set(range(120).filter((s) => s !== 37 && s !== 80)));
    const lines = await rejectedLines(dir);
    expect(lines.map((l) => l.seq).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([37, 80]);
    for (const l of lines) {
      expect(l).toMatchObject({ kind: "rejected", sink: "otlp", status: 400, node_id: NODE });
      expect(l.reason).toMatch(/poison/);
      expect(l.event).toEqual(events[(l.seq ?? 0) - 1]);
    }
    // Bisection: O(log n) extra requests per poison record, not one per record.
    expect(rx.requests).toBeLessThan(40);
    expect(x.status().dead_lettered).toBe(2);
  });

  it("a refusal that is not about the content (404: wrong URL) is retried, never dead-lettered", async () => {
    const dir = await tmp();
    const rx = await track(startOtlpJsonLogsReceiver());
    await fill(dir, [mixedEvent(0), mixedEvent(1)]);
    const x = exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url: `${rx.url}/wrong/v1/logs`, serviceName: NODE, timeoutMs: 5_000 }) });
    const r = await x.drainOnce();
    expect(r.caughtUp).toBe(false);
    expect(r.error).toBeInstanceOf(SinkUnavailable);
    expect((r.error as SinkUnavailable).reason).toBe("refused");
    expect(r.pos).toBe(0);
    expect(await rejectedLines(dir)).toEqual([]);
  });

  it("an OTLP partial success is recorded (log, metric, telemetry.rejected.jsonl) and not retried, as the spec requires", async () => {
    const dir = await tmp();
    const rx = await track(startOtlpJsonLogsReceiver());
    rx.fault = (n) => (n === 1 ? { partialRejected: 2 } : undefined);
    await fill(dir, Array.from({ length: 10 }, (_, i) => mixedEvent(i)));
    const x = exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url: rx.url, serviceName: NODE, timeoutMs: 5_000 }) });
    expect(await x.drainOnce()).toMatchObject({ caughtUp: true, pos: 10 });
    const lines = await rejectedLines(dir);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ kind: "partial_success", rejected_count: 2, reason: "injected partial success" });
    expect(x.status().partial_rejected).toBe(2);
  });

  it("at least once across crashes: stopped mid-drain again and again, the receiver sees every seq and pos never passes an unconfirmed one", async () => {
    const dir = await tmp();
    const rx = await track(startOtlpJsonLogsReceiver());
    await fill(dir, Array.from({ length: 1000 }, (_, i) => mixedEvent(i)));
    const acked = new Set<number>();
    const posViolations: string[] = [];
    let posSeen = 0;
    let crash: (() => void) | undefined;
    let crashAfter = 0;
    rx.beforeAccept = async (records) => {
      const p = await readPos(dir);
      const pos = p.kind === "ok" ? p.pos : 0;
      if (pos < posSeen) posViolations.push(`pos went back from ${posSeen} to ${pos}`);
      posSeen = pos;
      for (let s = 1; s <= pos; s++) if (!acked.has(s)) posViolations.push(`pos ${pos} covers seq ${s}, never acknowledged`);
      if (crash && rx.accepted + 1 >= crashAfter) {
        crash(); // the "process" dies before it sees this answer
        crash = undefined;
        return;
      }
      for (const r of records) acked.add(r.seq);
    };
    for (const k of [3, 7, 2, 5]) {
      const ac = new AbortController();
      crash = () => ac.abort();
      crashAfter = rx.accepted + k;
      const x = new Exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url: rx.url, serviceName: NODE, timeoutMs: 5_000 }), nodeId: NODE, batchSize: 37, log: silent });
      const r = await x.drainOnce({ signal: ac.signal });
      expect(r.caughtUp).toBe(false);
      await x.close(); // only the lock: in-memory state is gone, as after a crash
    }
    const x = exporter({ wal: dir, sink: new OtlpHttpLogsSink({ url: rx.url, serviceName: NODE, timeoutMs: 5_000 }), batchSize: 37 });
    expect(await x.drainOnce()).toMatchObject({ caughtUp: true, pos: 1000 });
    expect(posViolations).toEqual([]);
    expect(seqSet(rx.arrivals)).toEqual(new Set(range(1000)));
    expect(rx.arrivals.length).toBeGreaterThan(1000); // the batches in flight at each crash came again
  });
});

describe("exporter → control plane events (a test server implementing the documented contract)", () => {
  it("posts a cpapi IngestRequest with event_id <node>:wal:<generation>:<seq>; a restart from an older position is deduped by the receiver", async () => {
    const dir = await tmp();
    const cp = await track(startControlPlaneEventsContractServer());
    const events = Array.from({ length: 90 }, (_, i) => mixedEvent(i));
    await fill(dir, events);
    const sink = new ControlPlaneEventsSink({ url: cp.url, timeoutMs: 5_000 });
    const x = exporter({ wal: dir, sink, batchSize: 25 });
    expect(await x.drainOnce()).toMatchObject({ caughtUp: true, pos: 90 });
    await x.close();
    expect(cp.stored).toHaveLength(90);
    const byId = new Map(cp.stored.map((e) => [e.event_id, e]));
    const gen = (await readGeneration(nodeWalFs, dir)).id;
    expect(gen).toMatch(/^[0-9a-f]{32}$/);
    expect(byId.get(`${NODE}:wal:${gen}:1`)).toEqual({ event_id: `${NODE}:wal:${gen}:1`, event_type: "ai.agent.error", node_id: NODE, timestamp: expect.any(String) as string, attributes: events[0] });
    expect(byId.get(`${NODE}:wal:${gen}:2`)).toMatchObject({ event_type: "ai.policy.decision", timestamp: new Date(1_700_000_000_001).toISOString() });
    // Crash before pos was persisted: everything is sent again; the contract's dedupe keeps one copy.
    const { writePos } = await import("../../src/telemetry/exporter/pos.js");
    await writePos(dir, { seq: 0, generation: gen });
    const again = exporter({ wal: dir, sink, batchSize: 25 });
    expect(await again.drainOnce()).toMatchObject({ caughtUp: true, pos: 90 });
    expect(cp.stored).toHaveLength(90);
    expect(cp.deduped).toBe(90);
    const latest = await (await fetch(`${cp.url}/v1/events?node_id=${NODE}&event_type=ai.agent.error&limit=2`)).json() as { events: { seq: number }[]; count: number };
    expect(latest.count).toBe(2);
  });

  it("503 (busy) and 507 (disk full) are retried; a malformed event (400) is dead-lettered alone", async () => {
    const dir = await tmp();
    const cp = await track(startControlPlaneEventsContractServer());
    cp.fault = (n) => (n === 1 ? { status: 503 } : n === 2 ? { status: 507 } : undefined);
    await fill(dir, Array.from({ length: 40 }, (_, i) => (i === 12 ? { ...mixedEvent(i), poison: true } : mixedEvent(i))));
    const x = exporter({ wal: dir, sink: new ControlPlaneEventsSink({ url: cp.url, timeoutMs: 5_000 }), batchSize: 16 });
    const run = startRun(x);
    await until(() => x.status().pos === 40, "drain");
    await run.stop();
    expect(cp.stored.map((e) => Number(e.event_id.split(":").at(-1))).sort((a, b) => a - b)).toEqual(range(40).filter((s) => s !== 13));
    expect((await rejectedLines(dir)).map((l) => [l.seq, l.sink, l.status])).toEqual([[13, "control-plane", 400]]);
    expect(x.status().retries).toBeGreaterThanOrEqual(2);
  });
});

describe("exporter → both (FanoutSink)", () => {
  it("one receiver's outage does not flood the other with the same batch", async () => {
    const dir = await tmp();
    const rx = await track(startOtlpJsonLogsReceiver());
    const cp = await track(startControlPlaneEventsContractServer());
    cp.fault = (n) => (n <= 4 ? { status: 503 } : undefined);
    await fill(dir, Array.from({ length: 60 }, (_, i) => mixedEvent(i)));
    const sink = new FanoutSink([new OtlpHttpLogsSink({ url: rx.url, serviceName: NODE, timeoutMs: 5_000 }), new ControlPlaneEventsSink({ url: cp.url, timeoutMs: 5_000 })]);
    const x = exporter({ wal: dir, sink, batchSize: 100 });
    const run = startRun(x);
    await until(() => x.status().pos === 60, "drain to both");
    await run.stop();
    expect(rx.arrivals).toHaveLength(60);
    expect(cp.stored).toHaveLength(60);
    expect(x.status().sink).toBe("otlp+control-plane");
  });
});
