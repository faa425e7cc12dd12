import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { buildBundle } from "../policy/index.js";
import { createToken, loadPolicy, telemetryWalDir } from "../node/index.js";
import { Exporter, OtlpHttpLogsSink, inspectWalDir, readCommitted, readPos } from "../telemetry/index.js";
import { startStandInCollector } from "./collector.js";
import { startRuntimeChild } from "./runtime-child.js";
import type { RuntimeChild } from "./runtime-child.js";
import { recorder } from "./steps.js";
import type { QuickstartStep, Record_ } from "./steps.js";

export interface Tutorial03Options {
  dir: string;
  examplesDir: string;
  /** Concurrent agent clients while the runtime is killed. Default 8. */
  clients?: number;
  /** Answered calls before the SIGKILL. Default 300. */
  killAfter?: number;
  log?: (line: string) => void;
}

export interface Tutorial03Result {
  ok: boolean;
  stateRoot: string;
  answered: number;
  committed: number;
  delivered: number;
  steps: QuickstartStep[];
}

/** What the agents saw: answers per `tool=decision`, and calls that got no answer (in flight at the kill). */
interface Load {
  answered: Map<string, number>;
  unanswered: number;
}

const CALLS = [
  { kind: "tool.echo", params: { text: "status ok" } },
  { kind: "tool.shell", params: { command: "rm -rf /var/lib/models" } },
  { kind: "tool.echo", params: { text: "reading sensor 7" } },
];

/**
 * Tutorial 03, crash and recovery: a node runs the runtime (a real child
 * process, decision_log durable); agents call tools concurrently; the runtime
 * is SIGKILLed mid-load; it restarts (the WAL recovers: safe point, phantoms
 * dropped); the collector was down the whole time — the exporter keeps
 * everything and its position stays put; the collector comes back and the
 * backlog drains highest priority first (decisions before lifecycle events)
 * with every answered call's decision delivered, none twice.
 */
export async function runTutorial03(opts: Tutorial03Options): Promise<Tutorial03Result> {
  const dir = resolve(opts.dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const steps: QuickstartStep[] = [];
  const record = recorder(steps, opts.log);
  const stateRoot = join(dir, "node");
  const walDir = telemetryWalDir(stateRoot);
  const built = await buildBundle(join(opts.examplesDir, "policies"), { name: "tutorial-03", version: "1.0.0" });
  const loaded = await loadPolicy(stateRoot, built.bytes);
  record("node", `policy ${loaded.loaded.ref} loaded into ${stateRoot}`);
  loaded.loaded.engine.dispose();
  const created = await createToken(stateRoot, "tutorial-agent");
  const bearer = { authorization: `Bearer ${created.token}` };
  record("token", `${created.id} for agent tutorial-agent: every agent call carries it (Authorization: Bearer …)`);

  const first = await startRuntimeChild(stateRoot);
  record("runtime", `pid ${first.child.pid ?? "?"} serving ${first.url} (decision_log durable: an answer means its decision is on disk)`);
  const load = await loadThenKill(first, bearer, opts.clients ?? 8, opts.killAfter ?? 300);
  const total = [...load.answered.values()].reduce((a, b) => a + b, 0);
  record("SIGKILL", `runtime killed mid-load after ${total} answered calls (${fmt(load.answered)}); ${load.unanswered} calls were in flight and got no answer`);
  const crashed = await inspectWalDir(walDir);
  const phantoms = crashed.frames.length - ((crashed.safe_seq ?? 0) - crashed.base);
  record("WAL after the crash", `safe_seq ${crashed.safe_seq ?? "none"}, ${crashed.frames.length} frames (${phantoms} beyond the safe point: written, never acknowledged, dropped by recovery), torn tail ${crashed.torn_tail_bytes} B; recovery will ${crashed.fail_hard ? `FAIL HARD (${crashed.fail_hard})` : "proceed"}`, crashed.fail_hard === null);

  const second = await startRuntimeChild(stateRoot);
  const after = await callsAfterRestart(second.url, bearer, load);
  second.child.kill("SIGTERM");
  await second.exited;
  record("restart", `recovered and served ${after} more calls; stopped cleanly (SIGTERM)`);

  const { entries } = await readCommitted(walDir);
  const committed = checkNoLoss(entries.map((e) => e.event), load, record);
  const delivered = await drainAfterOutage(walDir, entries.map((e) => e.seq), record);
  const answered = [...load.answered.values()].reduce((a, b) => a + b, 0);
  return { ok: steps.every((s) => s.ok), stateRoot, answered, committed, delivered, steps };
}

/** `clients` agents call tools in a loop; after `killAfter` answers the runtime is SIGKILLed under them. */
async function loadThenKill(rt: RuntimeChild, bearer: Record<string, string>, clients: number, killAfter: number): Promise<Load> {
  const load: Load = { answered: new Map(), unanswered: 0 };
  let answeredTotal = 0;
  let killed = false;
  const agent = async (a: number): Promise<void> => {
    for (let i = a; !killed; i++) {
      const call = CALLS[i % CALLS.length] ?? CALLS[0];
      try {
        await callAndCount(rt.url, bearer, call, load);
        if (++answeredTotal >= killAfter && !killed) {
          killed = true;
          rt.child.kill("SIGKILL");
        }
      } catch {
        load.unanswered += 1; // the connection died with the runtime: no answer, so no promise was made
        return;
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, a) => agent(a)));
  await rt.exited;
  return load;
}

async function callsAfterRestart(url: string, bearer: Record<string, string>, load: Load): Promise<number> {
  for (const call of CALLS) await callAndCount(url, bearer, call, load);
  return CALLS.length;
}

/** One tool call over HTTP; its answer is counted under `tool=decision`. Throws when no answer came. */
async function callAndCount(url: string, bearer: Record<string, string>, call: (typeof CALLS)[number] | undefined, load: Load): Promise<void> {
  const res = await fetch(`${url}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...bearer }, body: JSON.stringify(call) });
  const body = (await res.json()) as { decision?: string };
  const key = `${call?.kind ?? "?"}=${body.decision ?? "?"}`;
  load.answered.set(key, (load.answered.get(key) ?? 0) + 1);
}

/** Every answered call has its decision in the WAL; at most the unanswered in-flight calls add more. */
function checkNoLoss(events: Record<string, unknown>[], load: Load, record: Record_): number {
  const decisions = new Map<string, number>();
  for (const e of events) {
    if (e.type !== "ai.policy.decision") continue;
    const key = `${String(e.tool)}=${String(e.decision)}`;
    decisions.set(key, (decisions.get(key) ?? 0) + 1);
  }
  const short = [...load.answered].filter(([k, n]) => (decisions.get(k) ?? 0) < n);
  const answered = [...load.answered.values()].reduce((a, b) => a + b, 0);
  const logged = [...decisions.values()].reduce((a, b) => a + b, 0);
  const lifecycle = events.filter((e) => e.type === "ai.agent.lifecycle").map((e) => String(e.phase));
  const extra = logged >= answered
    ? `the ${logged - answered} extra are calls decided and logged just before the kill whose answers never left`
    : `${answered - logged} ANSWERED CALLS HAVE NO DECISION EVENT (${short.map(([k]) => k).join(", ")})`;
  record("no event loss", `${answered} answered calls, ${logged} decision events committed (${fmt(decisions)}); ${extra}; lifecycle: ${lifecycle.join(", ")}`,
    short.length === 0 && logged <= answered + load.unanswered);
  return events.length;
}

/** Collector down: nothing confirmed, nothing lost. Collector up: the backlog drains, decisions first. */
async function drainAfterOutage(walDir: string, committedSeqs: number[], record: Record_): Promise<number> {
  const down = await startStandInCollector();
  await down.close(); // its port is now closed: the collector is down
  const ex1 = new Exporter({ wal: walDir, nodeId: "tutorial-node", sink: new OtlpHttpLogsSink({ url: down.url, serviceName: "tutorial-node", timeoutMs: 2_000 }), retry: { baseMs: 10, maxMs: 50 } });
  const r1 = await ex1.drainOnce({ maxBatches: 3 });
  await ex1.close();
  const pos1 = await readPos(walDir);
  record("collector down", `drain stopped (${r1.error?.message.slice(0, 80) ?? "no error?"}); telemetry.pos ${pos1.kind === "ok" ? pos1.pos : "not written"}, backlog ${r1.backlog}: nothing confirmed, nothing dropped`,
    r1.error !== undefined && r1.confirmed === 0 && r1.backlog === committedSeqs.length);

  const up = await startStandInCollector();
  try {
    const ex2 = new Exporter({ wal: walDir, nodeId: "tutorial-node", sink: new OtlpHttpLogsSink({ url: up.url, serviceName: "tutorial-node" }), batchSize: 64 });
    const r2 = await ex2.drainOnce();
    await ex2.close();
    const seqs = up.records.map((r) => r.seq);
    const exact = seqs.length === committedSeqs.length && new Set(seqs).size === seqs.length && committedSeqs.every((s) => seqs.includes(s));
    const lastDecision = Math.max(...up.records.filter((r) => r.priority === 2).map((r) => r.request));
    const firstLifecycle = Math.min(...up.records.filter((r) => r.priority === 1).map((r) => r.request));
    const pos2 = await readPos(walDir);
    record("collector back", `${seqs.length} records in ${r2.batches} requests, each committed seq exactly once; telemetry.pos ${pos2.kind === "ok" ? pos2.pos : "?"}`, r2.caughtUp && exact);
    record("priority order", `decisions (priority 2) in requests 1..${lastDecision}, lifecycle events (priority 1, the oldest entries) from request ${firstLifecycle}: highest priority first, not oldest first`, lastDecision <= firstLifecycle);
    return seqs.length;
  } finally {
    await up.close();
  }
}

const fmt = (m: Map<string, number>): string => [...m].map(([k, n]) => `${k} ×${n}`).join(", ");
