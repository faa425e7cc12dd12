import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { CpClient } from "../cpapi/index.js";
import { createToken, setTrustRoot } from "../node/index.js";
import { startAutonomyChild } from "./children.js";
import type { AutonomyChild, ChildSet } from "./children.js";
import { emptyTally } from "./agents.js";
import type { AgentTally } from "./agents.js";

/** How often the nodes poll and the scheduler ticks: short, so the tutorial moves at a watchable pace. */
export const NODE_POLL_INTERVAL = "1s";
export const SCHEDULER_INTERVAL = "500ms";

export interface ControlPlane {
  process: AutonomyChild;
  url: string;
  db: string;
  /** An operator client with the bootstrap owner token. */
  client: CpClient;
}

/**
 * `autonomy serve` as a real child process: SQLite in the work folder,
 * loopback on a free port, the bootstrap owner token written to a 0600 file
 * (never printed by the tutorial), and the release key, so the control plane
 * refuses statements not signed by it.
 */
export async function startControlPlane(dir: string, releaseKeyFile: string, children: ChildSet, timeoutMs: number, signal?: AbortSignal): Promise<ControlPlane> {
  const cpDir = join(dir, "control-plane");
  await mkdir(cpDir, { recursive: true });
  const db = join(cpDir, "autonomy-cp.db");
  const tokenFile = join(cpDir, "owner.token");
  const proc = children.add(await startAutonomyChild({
    name: "the control plane (autonomy serve)", timeoutMs, cwd: cpDir, signal,
    args: ["serve", "--db", db, "--listen", "127.0.0.1:0", "--bootstrap-token-file", tokenFile, "--release-key", releaseKeyFile, "--scheduler-interval", SCHEDULER_INTERVAL, "--json"],
  }));
  const owner = (await readFile(tokenFile, "utf8")).trim();
  return { process: proc, url: proc.url, db, client: new CpClient({ baseUrl: proc.url, token: owner }) };
}

export interface FleetNode {
  nodeId: string;
  stateRoot: string;
  process: AutonomyChild;
  /** The node's tool server (agents call it). */
  url: string;
  /** The agent's bearer token on this node. */
  agentToken: string;
  /** The single-use enrollment token it spent (kept to show a second use is refused). */
  enrollmentToken: string;
  tally: AgentTally;
}

export interface NodeSpec {
  nodeId: string;
  /** SPKI PEM of the release key this node trusts. */
  trustedKeyPem: string;
  repository: string;
}

/**
 * One local node: its own state root with a trust root (the release key,
 * the repository, channel stable), an agent token, a single-use enrollment
 * token pinned to its id, and `autonomy runtime start --server` as a real
 * child process, which enrolls, heartbeats, polls and exports its WAL.
 * The enrollment token goes in AUTONOMY_ENROLL_TOKEN (a flag would show in `ps`).
 */
export async function startNode(dir: string, cp: ControlPlane, spec: NodeSpec, children: ChildSet, timeoutMs: number, signal?: AbortSignal): Promise<FleetNode> {
  const stateRoot = join(dir, "nodes", spec.nodeId);
  await setTrustRoot(stateRoot, { keys: [spec.trustedKeyPem], repository: spec.repository });
  const agent = await createToken(stateRoot, "fleet-agent");
  const enrollment = await cp.client.createEnrollmentToken({ node_id: spec.nodeId, labels: { fleet: "tutorial-02" }, ttl_seconds: 600 });
  const proc = children.add(await startAutonomyChild({
    name: spec.nodeId, timeoutMs, signal, env: { AUTONOMY_ENROLL_TOKEN: enrollment.token },
    args: ["runtime", "start", "--state-root", stateRoot, "--listen", "127.0.0.1:0", "--server", cp.url, "--node-id", spec.nodeId, "--poll-interval", NODE_POLL_INTERVAL, "--json"],
  }));
  return { nodeId: spec.nodeId, stateRoot, process: proc, url: proc.url, agentToken: agent.token, enrollmentToken: enrollment.token, tally: emptyTally() };
}
