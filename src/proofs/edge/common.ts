/**
 * What the relay suites share: seeded segment bytes, waiting on a node's
 * status without throwing (a wait that runs out is a measurement the check
 * then judges), queue arithmetic, and the netem probe.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { seededRng } from "../../lib/index.js";
import type { EdgeSuiteContext } from "../suite.js";
import type { LabStatus, Queue } from "./ctl.js";
import type { LabNode } from "./lab.js";

const run = promisify(execFile);

/** `count` distinct segments of `size` bytes, all derived from the seed (the same seed gives the same bytes). */
export function seededSegments(seed: number, count: number, size: number, salt = 0): Buffer[] {
  const rng = seededRng(seed * 7919 + salt);
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const b = Buffer.alloc(size);
    for (let j = 0; j < size; j++) b[j] = Math.floor(rng() * 256);
    // The index makes every segment distinct even when size is tiny.
    if (size >= 8) {
      b.writeUInt32BE(i, 0);
      b.writeUInt32BE(salt >>> 0, 4);
    }
    out.push(b);
  }
  return out;
}

/** Enqueues every segment on the node (control socket); returns their ids in order. */
export async function enqueueAll(node: LabNode, segments: readonly Buffer[]): Promise<string[]> {
  const ids: string[] = [];
  for (const s of segments) ids.push((await node.ctl.enqueue(s)).id);
  return ids;
}

export interface Waited<T> {
  /** The value the condition returned, or the last observation when it ran out of time. */
  value: T;
  ok: boolean;
  ms: number;
}

/**
 * Polls `observe` until `done(value)` or the timeout; never throws on timeout
 * (the caller's checks judge the last observation). Aborts with the run.
 */
export async function waitFor<T>(ctx: EdgeSuiteContext, timeoutMs: number, observe: () => Promise<T>, done: (v: T) => boolean, everyMs = 50): Promise<Waited<T>> {
  const t0 = performance.now();
  for (;;) {
    if (ctx.signal.aborted) throw new Error("aborted");
    const value = await observe();
    const ms = performance.now() - t0;
    if (done(value)) return { value, ok: true, ms };
    if (ms > timeoutMs) return { value, ok: false, ms };
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export const ZERO_QUEUE: Queue = { scheduled: 0, inflight: 0, acked: 0, failed: 0, deadletter: 0, total: 0 };

/** The node's queue for one peer (zeros when the peer is not listed yet). */
export function peerQueue(s: LabStatus, peer: string): Queue {
  return s.peers.find((p) => p.peer_id === peer)?.queue ?? ZERO_QUEUE;
}

/** Deliveries not yet terminal (scheduled, inflight or failed-and-waiting). */
export function pending(q: Queue): number {
  return q.scheduled + q.inflight + q.failed;
}

/**
 * Whether `tc netem` works here: tried in a throwaway network namespace (never on the
 * machine's own interfaces). Recorded in the report's notes with the impairment used.
 */
export async function probeNetem(ctx: EdgeSuiteContext, impairment: "proxy" | "none" = "proxy"): Promise<void> {
  const ns = `autonomy-netem-probe-${process.pid}`;
  let result: string;
  try {
    await run("ip", ["netns", "add", ns]);
    try {
      await run("ip", ["netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]);
      result = "available";
    } catch (e) {
      result = `unavailable: ${stderrOf(e)}`;
    } finally {
      await run("ip", ["netns", "delete", ns]).catch(() => undefined);
    }
  } catch (e) {
    result = `unavailable: no network namespace (${stderrOf(e)})`;
  }
  ctx.note("netem_probe", result);
  // Impaired labs use the proxy either way: the netem path is not built (this machine's kernel has no netem).
  ctx.note("impairment", impairment);
}

function stderrOf(e: unknown): string {
  const s = (e as { stderr?: unknown }).stderr;
  const text = typeof s === "string" && s.trim() !== "" ? s : e instanceof Error ? e.message : String(e);
  return text.trim().split("\n")[0]?.slice(0, 200) ?? "";
}

/** Each id → how many inbox entries carry it. */
export function inboxCounts(entries: readonly { segment_id: string }[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of entries) m.set(e.segment_id, (m.get(e.segment_id) ?? 0) + 1);
  return m;
}

/** Ids sent that are missing from the inbox, and ids present more than once (judged by the delivery checks). */
export function inboxProblems(sent: readonly string[], entries: readonly { segment_id: string }[]): { missing: number; twice: number; foreign: number } {
  const counts = inboxCounts(entries);
  const want = new Set(sent);
  let missing = 0;
  for (const id of want) if (!counts.has(id)) missing += 1;
  let twice = 0;
  let foreign = 0;
  for (const [id, n] of counts) {
    if (n > 1) twice += 1;
    if (!want.has(id)) foreign += 1;
  }
  return { missing, twice, foreign };
}

/** Samples of a queue during a drain break monotonicity when acked goes down or the total changes (exported for the tests). */
export function monotonicityViolations(samples: readonly Queue[], total: number): string[] {
  const out: string[] = [];
  let lastAcked = -1;
  samples.forEach((q, i) => {
    if (q.acked < lastAcked) out.push(`sample ${i}: acked ${lastAcked} → ${q.acked}`);
    if (q.total !== total) out.push(`sample ${i}: total ${q.total} ≠ ${total}`);
    const sum = q.scheduled + q.inflight + q.acked + q.failed + q.deadletter;
    if (sum !== q.total) out.push(`sample ${i}: states sum to ${sum}, total says ${q.total}`);
    lastAcked = Math.max(lastAcked, q.acked);
  });
  return out;
}
