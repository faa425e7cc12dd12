import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { CpClientError } from "../cpapi/index.js";
import { formatReference } from "../oci/index.js";
import { generateKeyPair } from "../sign/index.js";
import { agentRounds, formatTally, livePolicy } from "./agents.js";
import { ChildSet } from "./children.js";
import { startControlPlane, startNode } from "./fleet.js";
import type { ControlPlane, FleetNode } from "./fleet.js";
import { cpLifecycleEvents, matchLifecycle, nodeWithAcks, pathOf, readNodeWal } from "./fleet-evidence.js";
import { Publisher } from "./fleet-releases.js";
import type { FleetRelease } from "./fleet-releases.js";
import { misbehavingRollout } from "./fleet-rollout.js";
import type { RolloutOutcome } from "./fleet-rollout.js";
import { recorder } from "./steps.js";
import type { QuickstartStep, Record_ } from "./steps.js";
import { StepFailed, TutorialAborted, waitFor } from "./wait.js";

export interface Tutorial02Timeouts {
  /** A child process printing its ready line. */
  startMs: number;
  /** Every node activating release 1, and its lifecycle events reaching the control plane. */
  convergeMs: number;
  /** The rollout of release 2 from creation to rolled back. */
  rolloutMs: number;
}

/**
 * Breakages that must make the tutorial FAIL (its tests use them to prove
 * the checks bite): one node trusting another key (it never activates), or
 * the plan created without its behaviour gate (release 2 reaches every node).
 */
export type Tutorial02Fault = "node-untrusted-key" | "no-behaviour-gate";

export interface Tutorial02Options {
  /** Work folder; cleared and recreated. */
  dir: string;
  /** Folder holding examples/ (policies, agent, tutorial-02/release-2). */
  examplesDir: string;
  log?: (line: string) => void;
  /** Aborting (Ctrl-C) stops the tutorial; its child processes are stopped either way. */
  signal?: AbortSignal;
  timeouts?: Partial<Tutorial02Timeouts>;
  fault?: Tutorial02Fault;
}

export interface Tutorial02Result {
  ok: boolean;
  control_plane: string | null;
  releases: { label: string; release_id: string; sequence: number; lock_fingerprint: string }[];
  nodes: { node_id: string; release_id: string | null; sequence: number | null }[];
  rollout: RolloutOutcome | null;
  /** The child processes it started (all stopped when it returns). */
  processes: { name: string; pid: number }[];
  duration_ms: number;
  steps: QuickstartStep[];
}

const DEFAULT_TIMEOUTS: Tutorial02Timeouts = { startMs: 30_000, convergeMs: 60_000, rolloutMs: 120_000 };
const NODE_IDS = ["node-a", "node-b", "node-c"] as const;
/** Agent rounds per node on release 1 (each: three tool.echo, one tool.shell). */
const ROUNDS = 5;

interface Ctx {
  opts: Tutorial02Options;
  dir: string;
  record: Record_;
  log: (line: string) => void;
  timeouts: Tutorial02Timeouts;
  children: ChildSet;
  result: Tutorial02Result;
  cp?: ControlPlane;
  nodes: FleetNode[];
}

/**
 * Tutorial 02, seed once, update everywhere: an embedded control plane
 * (`autonomy serve`, SQLite, loopback) and three local nodes (`autonomy
 * runtime start --server`, each its own state root and trust root, enrolled
 * with single-use tokens), all real child processes. Release 1 is published;
 * each node polls, detects it, verifies it against its own trust root and
 * activates it; the control plane shows each node's path, and the lifecycle
 * events in each node's WAL match the control plane's, release id and signed
 * lock fingerprint included. Then release 2, whose agents' calls its own
 * policy denies, goes out with a canary batch of one and a behaviour gate:
 * the gate fails on the nodes' own telemetry, the plan rolls back by itself,
 * the canary returns to release 1's content and the other nodes never ran
 * release 2. Every step is checked; a step that does not behave ends the
 * tutorial with ok=false. Child processes are stopped on every path.
 */
export async function runTutorial02(opts: Tutorial02Options): Promise<Tutorial02Result> {
  const started = Date.now();
  const dir = resolve(opts.dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const steps: QuickstartStep[] = [];
  const log = opts.log ?? ((): void => undefined);
  const ctx: Ctx = {
    opts, dir, log, record: recorder(steps, opts.log), timeouts: { ...DEFAULT_TIMEOUTS, ...(opts.timeouts ?? {}) }, children: new ChildSet(), nodes: [],
    result: { ok: false, control_plane: null, releases: [], nodes: [], rollout: null, processes: [], duration_ms: 0, steps },
  };
  try {
    await play(ctx);
  } catch (e) {
    if (e instanceof StepFailed) ctx.record(e.step, e.message, false);
    else if (e instanceof TutorialAborted) ctx.record("interrupted", e.message, false);
    else ctx.record("error", e instanceof Error ? e.message : String(e), false);
  } finally {
    await stopEverything(ctx);
  }
  ctx.result.ok = steps.every((s) => s.ok);
  ctx.result.duration_ms = Date.now() - started;
  return ctx.result;
}

/** Between steps: stop here if the user pressed Ctrl-C. */
function checkpoint(ctx: Ctx): void {
  if (ctx.opts.signal?.aborted) throw new TutorialAborted();
}

async function play(ctx: Ctx): Promise<void> {
  const { record, dir } = ctx;
  const publisher = await Publisher.create(dir);
  record("keys", `release key pair ${publisher.keyPrefix}.key / .pub (ECDSA P-256, demo key, unencrypted)`);
  const good = await publisher.release("release 1", "v1", 1, join(ctx.opts.examplesDir, "agent"), join(ctx.opts.examplesDir, "policies"), "1.0.0");
  record("release 1", `${formatReference(good.ref)} sequence 1: image ${good.imageDigest}, ${good.policy} (tool.echo allowed, tool.shell forbidden), lock ${good.lockFingerprint}; signed statement`);

  const cp = await startControlPlane(dir, `${publisher.keyPrefix}.pub`, ctx.children, ctx.timeouts.startMs, ctx.opts.signal);
  ctx.cp = cp;
  ctx.result.control_plane = cp.url;
  ctx.result.processes.push({ name: "control plane", pid: cp.process.pid });
  record("control plane", `autonomy serve pid ${cp.process.pid} at ${cp.url}: SQLite ${cp.db}, bootstrap owner token in ${join(dir, "control-plane", "owner.token")} (0600), refuses releases not signed by the release key`);

  checkpoint(ctx);
  await startFleet(ctx, publisher);
  checkpoint(ctx);
  const goodId = await publish(ctx, good);
  await converge(ctx, good, goodId);
  await lifecycleEvidence(ctx, good, goodId);
  await agentsOnRelease1(ctx, good);
  checkpoint(ctx);
  ctx.result.rollout = await misbehavingRollout({
    cp: cp.client, publisher, examplesDir: ctx.opts.examplesDir, nodes: ctx.nodes, good: { release: good, id: goodId },
    record, log: ctx.log, timeoutMs: ctx.timeouts.rolloutMs, signal: ctx.opts.signal, withoutGate: ctx.opts.fault === "no-behaviour-gate",
  });
  ctx.result.releases.push(...ctx.result.rollout.releases);
}

/** Three nodes, each with its own state root and trust root, enrolled with single-use tokens. */
async function startFleet(ctx: Ctx, publisher: Publisher): Promise<void> {
  const cp = ctx.cp as ControlPlane;
  for (const nodeId of NODE_IDS) {
    // The fault: this node trusts a key that never signed anything, so it must refuse every release.
    const trustedKeyPem = ctx.opts.fault === "node-untrusted-key" && nodeId === "node-c" ? generateKeyPair({}).publicPem : publisher.publicPem;
    const node = await startNode(ctx.dir, cp, { nodeId, trustedKeyPem, repository: publisher.repository }, ctx.children, ctx.timeouts.startMs, ctx.opts.signal);
    ctx.nodes.push(node);
    ctx.result.processes.push({ name: nodeId, pid: node.process.pid });
    checkpoint(ctx);
    ctx.record(nodeId, `autonomy runtime start --server pid ${node.process.pid}: state root ${node.stateRoot}, trust root = the release key for ${publisher.repository} on channel stable, tool server ${node.url}`);
  }
  const listed = await waitFor<{ node_id: string; release_id: string | null }[]>("enrolled", "3 nodes on GET /v1/nodes", async () => {
    const page = await cp.client.listNodes({ label: ["fleet=tutorial-02"] });
    return page.nodes.length === NODE_IDS.length ? { done: page.nodes } : { seen: `${page.nodes.length} nodes: ${page.nodes.map((n) => n.node_id).join(", ")}` };
  }, { timeoutMs: ctx.timeouts.startMs, signal: ctx.opts.signal });
  ctx.record("enrolled", `GET /v1/nodes: ${listed.map((n) => `${n.node_id} (release ${n.release_id ?? "none"})`).join(", ")}; each spent a single-use enrollment token pinned to its id`, listed.every((n) => n.release_id === null));
  await enrollmentIsSingleUse(ctx, cp);
}

/** A spent enrollment token buys nothing more: node-a's, used again, is refused. */
async function enrollmentIsSingleUse(ctx: Ctx, cp: ControlPlane): Promise<void> {
  const first = ctx.nodes[0];
  if (!first) return;
  try {
    await cp.client.enroll(first.enrollmentToken, { node_id: first.nodeId });
    ctx.record("single-use", `${first.nodeId}'s enrollment token worked a second time`, false);
  } catch (e) {
    const refused = e instanceof CpClientError && e.status === 401;
    ctx.record("single-use", `${first.nodeId}'s enrollment token used again: refused (${e instanceof CpClientError ? `${e.status ?? "?"} ${e.problemCode ?? e.code}` : String(e)})`, refused);
  }
}

async function publish(ctx: Ctx, r: FleetRelease): Promise<string> {
  const cp = ctx.cp as ControlPlane;
  const published = await cp.client.publishRelease({ statement: r.envelope as never, image: formatReference(r.ref), channel: "stable", notes: "tutorial 02: release 1" });
  ctx.result.releases.push({ label: r.label, release_id: published.release_id, sequence: published.sequence, lock_fingerprint: published.lock_fingerprint });
  ctx.record("publish release 1", `POST /v1/releases → ${published.release_id} on channel stable (sequence ${published.sequence}); the control plane checked its signature, the nodes will verify it themselves`);
  return published.release_id;
}

const PATH = ["polled", "candidate_detected", "verify_started", "verify_passed", "activation_started", "activated"];

/** Every node polls, detects release 1, verifies and activates it; the control plane shows each node's path. */
async function converge(ctx: Ctx, r: FleetRelease, releaseId: string): Promise<void> {
  const cp = (ctx.cp as ControlPlane).client;
  const t0 = Date.now();
  await waitFor<true>("converge", `${NODE_IDS.length} nodes to activate ${releaseId} and heartbeat it`, async () => {
    const seen: string[] = [];
    let done = 0;
    for (const n of ctx.nodes) {
      const v = await nodeWithAcks(cp, n.nodeId);
      const failed = v.acks.find((a) => a.release_id === releaseId && (a.phase === "verify_failed" || a.phase === "activate_failed"));
      if (failed) return { fail: `${n.nodeId} refused release 1: ${failed.phase} ${failed.detail}` };
      const path = pathOf(v.acks, releaseId);
      if (v.release_id === releaseId && path.includes("activated")) done += 1;
      seen.push(`${n.nodeId} ${path.at(-1) ?? "no ack"}`);
    }
    return done === ctx.nodes.length ? { done: true } : { seen: seen.join(", ") };
  }, { timeoutMs: ctx.timeouts.convergeMs, signal: ctx.opts.signal });
  const fleet = (await cp.listNodes({ label: ["fleet=tutorial-02"] })).nodes;
  ctx.record("converged", `all ${ctx.nodes.length} nodes run ${releaseId} after ${((Date.now() - t0) / 1000).toFixed(1)} s; GET /v1/nodes: ${fleet.map((n) => `${n.node_id} ${n.release_id ?? "none"} (sequence ${n.activation_sequence ?? "?"}, last seen ${n.last_seen ?? "never"})`).join(", ")}`,
    fleet.length === ctx.nodes.length && fleet.every((n) => n.release_id === releaseId));
  for (const n of ctx.nodes) {
    const v = await nodeWithAcks(cp, n.nodeId);
    const path = pathOf(v.acks, releaseId);
    ctx.result.nodes.push({ node_id: n.nodeId, release_id: v.release_id, sequence: v.activation_sequence });
    ctx.record(`${n.nodeId} path`, `${path.join(" → ")}; heartbeat: sequence ${v.activation_sequence ?? "?"}, lock ${v.lock_fingerprint ?? "?"}`,
      inOrder(path, PATH) && v.lock_fingerprint === r.lockFingerprint);
  }
}

/** `want` appears in `path` in this order (the poller may write `polled` again in between). */
function inOrder(path: readonly string[], want: readonly string[]): boolean {
  let i = 0;
  for (const p of path) if (p === want[i]) i += 1;
  return i === want.length;
}

/** Each node's WAL and the control plane's events tell the same story, with the signed lock's fingerprint. */
async function lifecycleEvidence(ctx: Ctx, r: FleetRelease, releaseId: string): Promise<void> {
  const cp = (ctx.cp as ControlPlane).client;
  const lines = await waitFor<string[]>("verifiable lifecycle", "every lifecycle event in the nodes' WALs to reach the control plane (POST /v1/events)", async () => {
    const out: string[] = [];
    for (const n of ctx.nodes) {
      const wal = await readNodeWal(n.stateRoot);
      const m = matchLifecycle(wal.lifecycle, await cpLifecycleEvents(cp, n.nodeId), releaseId, r.lockFingerprint);
      if (m.problems.length > 0) return { seen: `${n.nodeId}: ${m.problems[0] ?? ""}` };
      const seqs = wal.lifecycle.filter((e) => e.release_id === releaseId).map((e) => e.seq);
      out.push(`${n.nodeId} ${m.phases.length} events (WAL seq ${Math.min(...seqs)}–${Math.max(...seqs)})`);
    }
    return { done: out };
  }, { timeoutMs: ctx.timeouts.convergeMs, signal: ctx.opts.signal });
  ctx.record("verifiable lifecycle", `each node's WAL and the control plane's ai.deployment.lifecycle events match one to one (event id <node>:wal:<generation>:<seq>, phase, ${releaseId}, lock ${r.lockFingerprint} = the lock the publisher signed): ${lines.join("; ")}`);
}

/** The agents at work on release 1: echo allowed, shell refused, on every node. */
async function agentsOnRelease1(ctx: Ctx, r: FleetRelease): Promise<void> {
  // The live policy follows an activation within 250 ms: the agents start once every node enforces release 1's.
  await waitFor<true>("agents on release 1", `every node's tool server to enforce ${r.policy}`, async () => {
    const refs = await Promise.all(ctx.nodes.map(async (n) => `${n.nodeId} ${await livePolicy(n.url, n.agentToken)}`));
    return refs.every((x) => x.includes(` ${r.policy} `)) ? { done: true } : { seen: refs.join(", ") };
  }, { timeoutMs: ctx.timeouts.startMs, signal: ctx.opts.signal });
  await Promise.all(ctx.nodes.map((n) => agentRounds(n.url, n.agentToken, ROUNDS, n.tally)));
  const ok = ctx.nodes.every((n) => n.tally.allowed === 3 * ROUNDS && n.tally.denied === ROUNDS && n.tally.errors === 0);
  ctx.record("agents on release 1", `${ctx.nodes.map((n) => `${n.nodeId}: ${formatTally(n.tally)}`).join("; ")}: each decision is in the node's WAL and on its way to the control plane`, ok);
}

async function stopEverything(ctx: Ctx): Promise<void> {
  const exits = await ctx.children.stopAll();
  if (exits.length === 0) return;
  const clean = exits.every((e) => e.code === 0);
  ctx.record("stop", `the control plane and ${exits.length - 1} nodes stopped (SIGTERM): exit ${exits.map((e) => e.code ?? e.signal ?? "?").join(", ")}`, clean);
}
