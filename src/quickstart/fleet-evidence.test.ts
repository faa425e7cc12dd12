import { describe, expect, it } from "vitest";
import type { StoredEvent } from "../cpapi/index.js";
import { matchLifecycle } from "./fleet-evidence.js";
import type { WalLifecycle } from "./fleet-evidence.js";

const REL = "rel-0123456789abcdef";
const FP = `blake3:${"a".repeat(64)}`;
const PHASES = ["polled", "candidate_detected", "verify_started", "verify_passed", "activation_started", "activated"];

function wal(fp = FP): WalLifecycle[] {
  return PHASES.map((phase, i) => ({ seq: i + 3, phase, release_id: REL, lock_fingerprint: fp }));
}

function cp(entries: readonly WalLifecycle[]): StoredEvent[] {
  return entries.map((w, i): StoredEvent => ({
    event_id: `node-a:wal:${"0".repeat(32)}:${w.seq}`, event_type: "ai.deployment.lifecycle", node_id: "node-a", timestamp: "2026-12-06T00:00:00.000Z",
    release_id: w.release_id ?? undefined, lock_fingerprint: w.lock_fingerprint ?? undefined, attributes: { phase: w.phase },
    ingest_seq: i + 1, received_at: "2026-12-06T00:00:01.000Z",
  }));
}

describe("matchLifecycle: a node's WAL against the control plane's events", () => {
  it("agrees when every WAL event is on the control plane with the same phase, release and signed lock", () => {
    expect(matchLifecycle(wal(), cp(wal()), REL, FP)).toEqual({ problems: [], phases: PHASES });
  });

  it("names a WAL event the control plane does not have", () => {
    const m = matchLifecycle(wal(), cp(wal().slice(0, 5)), REL, FP);
    expect(m.problems).toEqual(["WAL seq 8 (activated) is not on the control plane"]);
  });

  it("names an event whose phase or fingerprint differs between the node and the control plane", () => {
    const other = wal().map((e) => (e.seq === 6 ? { ...e, phase: "verify_failed" } : e));
    expect(matchLifecycle(wal(), cp(other), REL, FP).problems).toEqual([`WAL seq 6: the node wrote verify_passed/${REL}/${FP}, the control plane has verify_failed/${REL}/${FP}`]);
  });

  it("refuses verified phases whose lock is not the one the publisher signed", () => {
    const forged = `blake3:${"b".repeat(64)}`;
    const m = matchLifecycle(wal(forged), cp(wal(forged)), REL, FP);
    expect(m.problems).toHaveLength(3);
    expect(m.problems[0]).toContain(`verify_passed names lock ${forged}, not the signed lock ${FP}`);
  });

  it("is not satisfied without an activated event", () => {
    const partial = wal().slice(0, 4);
    expect(matchLifecycle(partial, cp(partial), REL, FP).problems).toEqual([`no activated event in the WAL for ${REL}`]);
  });
});
