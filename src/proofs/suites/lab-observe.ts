/**
 * Reading the control plane's view back through its API, for the recovery
 * suites: plans, each node's assignment (as the node sees it: GET
 * /v1/releases/latest with its own credential), each node's stored acks.
 */
import type { CpClient, CreateRolloutInput, Rollout } from "../../cpapi/index.js";
import type { LabDevice } from "./lab-fleet.js";
import { crossPlanViolations, planViolations } from "./invariants.js";

/** Each device's assigned release as the server answers the device itself. */
export async function assignmentsOf(devices: readonly LabDevice[]): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  await Promise.all(devices.map(async (d) => {
    const r = await d.client.latestRelease(d.device.cfg.channel);
    out.set(d.nodeId, r.status === "release" ? r.release.release_id : null);
  }));
  return out;
}

/** How many acks the server keeps for each node (its path, GET /v1/nodes/:id). */
export async function storedAcks(owner: CpClient, nodeIds: readonly string[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  await Promise.all(nodeIds.map(async (id) => {
    const n = await owner.getNode(id);
    const acks = n["acks"];
    out.set(id, Array.isArray(acks) ? acks.length : 0);
  }));
  return out;
}

export async function plansOf(owner: CpClient, planIds: readonly string[]): Promise<Rollout[]> {
  return Promise.all(planIds.map((id) => owner.getRollout(id)));
}

export interface Consistency {
  plans: Rollout[];
  violations: string[];
  /** Reads needed until plans and assignments were seen in one quiet moment. */
  reads: number;
}

/**
 * Plans and assignments read as one picture: the plans, then every
 * assignment, then the plans again; when the two plan reads differ (the
 * scheduler moved something meanwhile) it reads again, so a move between two
 * reads is never taken for an inconsistency. Then every rule of
 * invariants.ts over that picture. `pins`: what each plan's members ran at
 * creation.
 */
export async function consistency(owner: CpClient, planIds: readonly string[], devices: readonly LabDevice[], pins: ReadonlyMap<string, string | null>, tries = 20): Promise<Consistency> {
  for (let i = 1; ; i++) {
    const first = await plansOf(owner, planIds);
    const assigned = await assignmentsOf(devices);
    const second = await plansOf(owner, planIds);
    const stable = JSON.stringify(first) === JSON.stringify(second);
    if (stable || i >= tries) {
      const violations = [...crossPlanViolations(second), ...second.flatMap((p) => planViolations(p, stable ? assigned : undefined, pins.get(p.plan_id) ?? null))];
      if (!stable) violations.push(`the plans never stood still for ${tries} reads: assignments not compared`);
      return { plans: second, violations, reads: i };
    }
  }
}

/** A single-stage plan body over explicit nodes; `over` changes any field. */
export function planBody(release: string, previous: string, nodes: readonly string[], over: Partial<CreateRolloutInput> = {}): CreateRolloutInput {
  return {
    release_id: release, previous_release_id: previous, target: { nodes: [...nodes] }, max_concurrency: nodes.length,
    stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 60, late_joiners: "ignore", ...over,
  };
}

export const TERMINAL_PHASES: ReadonlySet<string> = new Set(["completed", "cancelled", "rolled_back"]);
