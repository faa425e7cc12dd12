import { mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { formatReference } from "../oci/index.js";
import { readControlPlane, readNodeState, setTrustRoot } from "../node/index.js";
import { activateRelease } from "../runtime/index.js";
import { packActiveRelease, readBootState } from "../edge/index.js";
import type { PackedRelease } from "../edge/index.js";
import { freeLoopbackPort, sha256Digest } from "../lib/index.js";
import { Publisher } from "./fleet-releases.js";
import type { FleetRelease } from "./fleet-releases.js";
import { ChildSet } from "./children.js";
import type { AutonomyChild } from "./children.js";
import { edgeNode, edgeToml, fleetCertificates, precheck, relayStatus, startEdged, writeOsIdentity } from "./edge-nodes.js";
import type { EdgeNode } from "./edge-nodes.js";
import { recorder } from "./steps.js";
import type { QuickstartStep, Record_ } from "./steps.js";
import { StepFailed, waitFor } from "./wait.js";

export interface Tutorial04Options {
  /** Work folder; cleared and recreated. */
  dir: string;
  /** Folder holding examples/ (agent, policies). */
  examplesDir: string;
  log?: (line: string) => void;
  /** Ctrl-C: the tutorial stops its child processes and ends. */
  signal?: AbortSignal;
}

/** One edge node of the tutorial, as it ended. */
export interface Tutorial04Node {
  id: string;
  stateRoot: string;
  statement_digest: string | null;
  sequence: number | null;
  /** Whether the node has a control plane configured (it must not: the release reaches B and C only through the relay). */
  control_plane: boolean;
  /** The node's boot epoch ({state_root}/bootstrap): 0 after its first precheck, +1 per OS replacement it survived. */
  boot_epoch: number | null;
}

export interface Tutorial04Result {
  ok: boolean;
  /** The relayed release segment (sha256 of its bytes) and its size. */
  segment: { id: string; bytes: number } | null;
  nodes: Tutorial04Node[];
  steps: QuickstartStep[];
  duration_ms: number;
}

type Node = EdgeNode;

/**
 * Tutorial 04, seed once, update everywhere — without a control plane, and
 * surviving an OS replacement (seed 004, tutorial 04):
 *   1. a release is signed into an OCI image layout (no registry, no control plane);
 *   2. three edge nodes (edge-a, edge-b, edge-c) each set their OWN trust root;
 *      edge-a activates the release from the layout;
 *   3. edge-a packs its active release into one deterministic `release` segment;
 *   4. edged relays it over mutual TLS to edge-b and edge-c, which verify and
 *      activate it under their own trust roots (as a registry pull would);
 *   5. an OS replacement on edge-b (its os-release and kernel release change):
 *      `edged precheck` reconstructs and edge-b comes back on the same
 *      activation with its boot epoch advanced.
 * Steps 4 and 5 run `edged run` and `edgectl` as child processes, as an
 * operator would; certificates and prechecks use the library calls of
 * `autonomy cert` and `edged precheck`.
 */
export async function runTutorial04(opts: Tutorial04Options): Promise<Tutorial04Result> {
  const started = Date.now();
  const dir = resolve(opts.dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const steps: QuickstartStep[] = [];
  const record = recorder(steps, opts.log);
  const nodes = [edgeNode(dir, "edge-a", await freeLoopbackPort()), edgeNode(dir, "edge-b", await freeLoopbackPort()), edgeNode(dir, "edge-c", await freeLoopbackPort())] as const;
  const children = new ChildSet();
  let segment: PackedRelease | undefined;
  try {
    const pub = await Publisher.create(dir);
    record("keys", `release signing key ${pub.keyPrefix}.key / .pub (demo key, unencrypted)`);
    const rel = await pub.release("release 1", "v1", 1, join(opts.examplesDir, "agent"), join(opts.examplesDir, "policies"), "1.0.0");
    record("release", `${formatReference(rel.ref)} signed at sequence ${rel.sequence} (image ${rel.imageDigest}, ${rel.policy}) into an OCI image layout: no registry, no control plane`);
    await trustRoots([...nodes], pub, record);
    const [a, b, c] = nodes;
    await seedOne(a, rel, record);
    segment = await packSegment(a, record);
    await configure(dir, a, [b, c], record);
    const edged = await startFleet([c, b, a], children, record, opts.signal);
    await relayed(a, [b, c], record, opts.signal);
    await osReplacement(b, edged.get(b.id), children, record, opts.signal);
  } catch (e) {
    if (!(e instanceof StepFailed)) throw e;
    record(e.step, e.message, false);
  } finally {
    const stopped = await children.stopAll();
    if (stopped.length > 0) record("stop", `${stopped.length} edged processes stopped (SIGTERM): exit ${stopped.map((x) => x.code ?? x.signal ?? "?").join(", ")}`, stopped.every((x) => x.code === 0));
  }
  return {
    ok: steps.every((s) => s.ok), segment: segment ? { id: sha256Digest(segment.bytes).slice(7), bytes: segment.bytes.length } : null,
    nodes: await Promise.all(nodes.map(summary)), steps, duration_ms: Date.now() - started,
  };
}

/** Each node's own trust root: the release key, for the release's signed repository. None enrolls with a control plane. */
async function trustRoots(nodes: Node[], pub: Publisher, record: Record_): Promise<void> {
  for (const n of nodes) await setTrustRoot(n.stateRoot, { keys: [pub.publicPem], repository: pub.repository });
  record("trust roots", `${nodes.map((n) => n.id).join(", ")} each trust the release key for ${pub.repository} in their own state root; none has a control plane configured`);
}

/** Seed once: edge-a activates the release from the layout (verified against its trust root). */
async function seedOne(a: Node, rel: FleetRelease, record: Record_): Promise<void> {
  const r = await activateRelease({ ref: rel.ref, stateRoot: a.stateRoot });
  record(`${a.id} activates`, `statement ${r.activation.statement_digest} (sequence ${r.activation.sequence}) from the OCI layout after ${r.verification.steps.map((s) => s.step).join(", ")}; policy ${r.policyRef}`);
}

/** The release segment: edge-a's active release exactly as its store kept it, packed twice to show it is deterministic. */
async function packSegment(a: Node, record: Record_): Promise<PackedRelease> {
  const one = await packActiveRelease(a.stateRoot);
  const two = await packActiveRelease(a.stateRoot);
  if (one === undefined || two === undefined) throw new StepFailed("release segment", `${a.id} has no active release to relay`);
  if (!one.bytes.equals(two.bytes)) throw new StepFailed("release segment", "packing the same active release twice gave different bytes: peers could not dedupe it");
  record("release segment", `${a.id} packs its active release (sequence ${one.sequence}) into segment ${sha256Digest(one.bytes).slice(7, 19)}… (${one.bytes.length} bytes: image, statement envelope, lock and bundle; the same bytes every time)`);
  return one;
}

const OS_BEFORE = { id: "debian", version: "12", kernel: "6.1.0-31-amd64" };
const OS_AFTER = { id: "debian", version: "13", kernel: "6.12.12-amd64" };

/** Fleet certificates, OS-identity files and edge.toml per node; edge-a relays to edge-b and edge-c. Then the first precheck of each (epoch 0). */
async function configure(dir: string, a: Node, peers: Node[], record: Record_): Promise<void> {
  const all = [a, ...peers];
  const certs = await fleetCertificates(dir, all);
  record("fleet CA", `autonomy cert ca init → ${certs.caDir}/ca.crt; autonomy cert issue → ${all.map((n) => `${n.id}.crt`).join(", ")} (mutual TLS between the nodes, nothing else trusted)`);
  for (const n of all) {
    await writeOsIdentity(n, OS_BEFORE);
    await writeFile(n.config, n === a ? edgeToml(n, certs, peers, { forward: true }) : edgeToml(n, certs, [a], { forward: false }));
  }
  record("edge.toml", `${all.map((n) => n.config).join(", ")}: ${a.id} relays to ${peers.map((p) => `${p.id} (127.0.0.1:${p.port ?? "?"})`).join(" and ")}; each reads its OS identity from files this tutorial controls (${OS_BEFORE.id} ${OS_BEFORE.version}, kernel ${OS_BEFORE.kernel})`);
  const first = await Promise.all(all.map((n) => precheck("first precheck", n)));
  const wrong = first.findIndex((p) => p.outcome !== "first_run" || p.boot_epoch !== 0);
  if (wrong >= 0) throw new StepFailed("first precheck", `${all[wrong]?.id ?? "?"}: outcome ${first[wrong]?.outcome ?? "?"}, boot epoch ${first[wrong]?.boot_epoch ?? "?"} (expected first_run, 0)`);
  record("first precheck", `edged precheck on ${all.map((n) => n.id).join(", ")}: first run, OS fingerprint recorded, boot epoch 0 (exit 0: edged may start)`);
}

/** `edged run` on every node (receivers first). */
async function startFleet(order: Node[], children: ChildSet, record: Record_, signal?: AbortSignal): Promise<Map<string, AutonomyChild>> {
  const started = new Map<string, AutonomyChild>();
  for (const n of order) started.set(n.id, children.add(await startEdged(n, signal)));
  record("edged", order.map((n) => `${n.id} pid ${started.get(n.id)?.pid ?? "?"}${n.port !== undefined ? ` (receiver 127.0.0.1:${n.port})` : ""}`).join(", "));
  return started;
}

/** Waits for the peers to activate edge-a's release, then shows what each did and edge-a's relay queue. */
async function relayed(a: Node, peers: Node[], record: Record_, signal?: AbortSignal): Promise<void> {
  const want = (await readNodeState(a.stateRoot)).activation;
  if (want === undefined) throw new StepFailed("relay", `${a.id} has no active release`);
  await waitFor("relay", `${peers.map((p) => p.id).join(" and ")} to activate ${a.id}'s release (sequence ${want.sequence})`, async () => {
    const seen = await Promise.all(peers.map(async (p) => ({ p, act: (await readNodeState(p.stateRoot)).activation })));
    if (seen.every((x) => x.act?.statement_digest === want.statement_digest)) return { done: true };
    return { seen: seen.map((x) => `${x.p.id}: ${x.act ? `sequence ${x.act.sequence}` : "nothing active"}`).join(", ") };
  }, { timeoutMs: 30_000, signal });
  const status = await relayStatus("relay", a);
  record("relay", `${a.id}'s edged relayed its release segment over mutual TLS; edgectl relay status: queue ${JSON.stringify(status.queue ?? {})}`);
  for (const p of peers) {
    const s = await readNodeState(p.stateRoot);
    const cp = await readControlPlane(p.stateRoot);
    if (cp !== undefined) throw new StepFailed(`${p.id} activates`, `${p.id} has a control plane configured; the release must reach it only through the relay`);
    record(`${p.id} activates`, `statement ${s.activation?.statement_digest ?? "?"} (sequence ${s.activation?.sequence ?? "?"}), the same as ${a.id}'s, verified under ${p.id}'s own trust root; no control plane`);
  }
}

/** Stop edged on the node, replace its "OS", run precheck: it must reconstruct, advance the epoch, and keep the activation. */
async function osReplacement(n: Node, edged: AutonomyChild | undefined, children: ChildSet, record: Record_, signal?: AbortSignal): Promise<void> {
  const before = (await readNodeState(n.stateRoot)).activation;
  await edged?.stop("SIGTERM");
  await writeOsIdentity(n, OS_AFTER);
  record(`OS replacement on ${n.id}`, `edged stopped; the OS is now ${OS_AFTER.id} ${OS_AFTER.version} with kernel ${OS_AFTER.kernel}; the state root is untouched`);
  const p = await precheck("precheck after the OS replacement", n);
  if (p.outcome !== "reconstructed" || p.boot_epoch !== 1) throw new StepFailed("precheck after the OS replacement", `outcome ${p.outcome}, boot epoch ${p.boot_epoch ?? "?"} (expected reconstructed, 1)`);
  const ev = p.evidence;
  record("precheck after the OS replacement", `the OS fingerprint changed (${short(ev?.previous_fingerprint)} → ${short(ev?.new_fingerprint)}): reconstructed — activation ${short(ev?.restored.statement_digest ?? undefined)} and policy slots restored from the state root, WAL kept — boot epoch 0 → 1, evidence in ${n.stateRoot}/epoch/current/evidence.json`);
  const after = (await readNodeState(n.stateRoot)).activation;
  if (before === undefined || after?.statement_digest !== before.statement_digest || after.sequence !== before.sequence) {
    throw new StepFailed(`${n.id} back`, `activation before: ${before?.statement_digest ?? "none"}, after: ${after?.statement_digest ?? "none"}`);
  }
  const again = children.add(await startEdged(n, signal));
  record(`${n.id} back`, `on the same activation (statement ${after.statement_digest}, sequence ${after.sequence}) at boot epoch 1; edged running again (pid ${again.pid})`);
}

function short(fp: string | undefined): string {
  return fp === undefined ? "?" : `${fp.slice(0, 19)}…`;
}

async function summary(n: Node): Promise<Tutorial04Node> {
  const s = await readNodeState(n.stateRoot).catch(() => undefined);
  const cp = await readControlPlane(n.stateRoot).catch(() => undefined);
  const boot = await readBootState(n.stateRoot).catch(() => undefined);
  return {
    id: n.id, stateRoot: n.stateRoot, statement_digest: s?.activation?.statement_digest ?? null, sequence: s?.activation?.sequence ?? null,
    control_plane: cp !== undefined, boot_epoch: boot?.boot_epoch ?? null,
  };
}
