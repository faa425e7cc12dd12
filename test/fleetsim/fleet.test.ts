/**
 * The fleet simulator against a REAL control plane (buildApp over SQLite,
 * listening on loopback): devices enroll with their own tokens, poll, verify
 * the signed release statement themselves, ack every phase and send events;
 * the server is then asked what it saw.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpClient } from "../../src/cpapi/index.js";
import type { Envelope, Node, StoredEvent } from "../../src/cpapi/index.js";
import { assignFaults, runFleet } from "../../src/fleetsim/index.js";
import type { FleetOptions, FleetSummary } from "../../src/fleetsim/index.js";
import { formatReference } from "../../src/oci/index.js";
import { trustedKeys } from "../../src/supplychain/index.js";
import { makeRelease, testKeys } from "../helpers/release.js";
import type { MadeRelease, TestKeys } from "../helpers/release.js";
import { openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";

describe("autonomy lab fleet against the real control plane", () => {
  let cp: TestCp;
  let url: string;
  let operator: CpClient;
  let dir: string;
  let keys: TestKeys;

  beforeEach(async () => {
    cp = await openTestCp();
    // Devices stamp acks with real time; the control plane refuses an `at` more than 5 minutes off its own.
    cp.clock.set(Date.now());
    url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
    operator = new CpClient({ baseUrl: url, token: cp.owner });
    dir = await mkdtemp(join(tmpdir(), "fleet-"));
    keys = testKeys();
  });
  afterEach(async () => {
    await cp.close();
  });

  async function release(seq: number, signer: TestKeys = keys): Promise<{ id: string; rel: MadeRelease }> {
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v${seq}`, keys: signer, sequence: seq, agentText: `v${seq}`, repository: `oci:${dir}/reg` });
    const envelope = JSON.parse(Buffer.from(await rel.repo.getBlob(rel.signed.statement.envelope)).toString("utf8")) as Envelope;
    const id = (await operator.publishRelease({ statement: envelope, image: formatReference(rel.ref), channel: "stable" })).release_id;
    return { id, rel };
  }

  function options(o: Partial<FleetOptions>): FleetOptions {
    return {
      devices: 50, server: url, token: cp.owner, channel: "stable", labels: { site: "lab" }, faults: {}, seed: 7,
      trust: { trusted: trustedKeys([keys.publicKey]), threshold: 1, repository: `oci:${dir}/reg` },
      nodePrefix: "sim", durationMs: 30_000, untilConverged: true, pollIntervalMs: 200, maxInflight: 32, maxTransportErrorRate: 0, allowRemote: false, ...o,
    };
  }

  async function allNodes(): Promise<Map<string, Node>> {
    const out = new Map<string, Node>();
    let cursor: string | undefined;
    do {
      const page = await operator.listNodes({ label: ["site=lab"], limit: 1000, ...(cursor !== undefined ? { cursor } : {}) });
      for (const n of page.nodes) out.set(n.node_id, n);
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
    return out;
  }

  async function allEvents(event_type?: string): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    let cursor: string | undefined;
    do {
      const page = await operator.queryEvents({ limit: 1000, ...(event_type ? { event_type } : {}), ...(cursor !== undefined ? { cursor } : {}) });
      out.push(...page.events);
      cursor = page.next_cursor ?? undefined;
    } while (cursor !== undefined);
    return out;
  }

  const PATH = ["polled", "candidate_detected", "verify_started", "verify_passed", "activation_started", "activated"];

  it("50 devices converge on a signed release: every node's record, ack path and event is on the server", async () => {
    const { id, rel } = await release(1);
    const s = await runFleet(options({}));
    expect(s).toMatchObject({ exit_code: 0, converged: true, latest_release_id: id, releases: { [id]: 50 }, phases: { activated: 50 } });
    expect(s.requests.transport_errors).toBe(0);
    expect(s.acks).toEqual({ sent: 50 * PATH.length, failed: 0 });

    const nodes = await allNodes();
    expect(nodes.size).toBe(50);
    const fp = rel.signed.statement.predicate.lock.behavioral_fingerprint;
    for (const n of nodes.values()) {
      expect(n).toMatchObject({ release_id: id, activation_sequence: 1, lock_fingerprint: fp, boot_epoch: 0, labels: { site: "lab" }, last_ack: { release_id: id, phase: "activated" } });
      expect(n.wal_generation).toMatch(/^[0-9a-f]{32}$/);
    }
    const one = await operator.getNode("sim-0000");
    expect((one.acks as { phase: string }[]).map((a) => a.phase)).toEqual(PATH);

    // Every event the devices sent is stored once, under <node_id>:wal:<wal generation>:<seq>.
    const events = await allEvents();
    expect(events.length).toBe(s.events.sent);
    expect(s.events.inserted).toBe(s.events.sent);
    expect(s.events.pending).toBe(0);
    for (const e of events) {
      const n = nodes.get(e.node_id);
      expect(e.event_id).toMatch(new RegExp(`^${e.node_id}:wal:${n?.wal_generation ?? "?"}:[1-9][0-9]*$`));
    }
    const lifecycle = events.filter((e) => e.event_type === "ai.deployment.lifecycle");
    expect(lifecycle.length).toBe(50 * PATH.length);
    const activated = lifecycle.find((e) => e.node_id === "sim-0001" && e.attributes?.phase === "activated");
    expect(activated).toMatchObject({ release_id: id, lock_fingerprint: fp, attributes: { type: "ai.deployment.lifecycle", phase: "activated", node_id: "sim-0001", release_id: id, sequence: 1, lock_fingerprint: fp } });
    const decisions = events.filter((e) => e.event_type === "ai.policy.decision");
    expect(decisions.length).toBeGreaterThan(0);
    // As a real node following a control plane (src/runtime/wal-sink.ts): decisions and tool results name the release it runs.
    expect(decisions.every((e) => e.release_id === id && e.lock_fingerprint === fp && e.attributes?.release_id === id && ["allow", "deny"].includes(String(e.attributes?.decision)))).toBe(true);
    const results = events.filter((e) => e.event_type === "ai.tool.result");
    expect(results.every((e) => e.release_id === id)).toBe(true);
    expect(results.length).toBe(decisions.filter((e) => e.attributes?.decision === "allow").length);
    const r0 = results[0]?.attributes ?? {};
    expect([r0.type, typeof r0.ok, r0.transport, typeof r0.duration_ms, typeof r0.policy_ref]).toEqual(["ai.tool.result", "boolean", "http", "number", "string"]);
    expect(activated?.attributes?.statement_digest).toBe(rel.signed.statement.digest);
  }, 60_000);

  it("faults: the server shows verify_failed for corrupt devices, activate_failed for failing ones, activation_started for hung ones, a stale heartbeat for offline ones", async () => {
    const { id } = await release(1);
    const s = await runFleet(options({ faults: { corrupt: 0.1, fail: 0.1, hang: 0.1, offline: 0.04 } }));
    expect(s.converged).toBe(true);
    expect(Object.fromEntries(Object.entries(s.faults).map(([k, v]) => [k, v.length]))).toEqual({ fail: 5, hang: 5, corrupt: 5, misbehave: 0, offline: 2 });
    const nodes = await allNodes();
    const lastAck = (nodeId: string): string | undefined => nodes.get(nodeId)?.last_ack?.phase;
    for (const n of s.faults.corrupt) {
      expect(lastAck(n), n).toBe("verify_failed");
      expect(nodes.get(n)?.last_ack?.detail).toMatch(/^STATEMENT_MISSING: /);
      expect(nodes.get(n)?.release_id).toBeNull();
    }
    for (const n of s.faults.fail) expect([lastAck(n), nodes.get(n)?.release_id]).toEqual(["activate_failed", null]);
    for (const n of s.faults.hang) expect([lastAck(n), nodes.get(n)?.release_id]).toEqual(["activation_started", null]);
    // Offline devices activated in their first round, then went silent: their only heartbeat predates it.
    for (const n of s.faults.offline) expect([lastAck(n), nodes.get(n)?.release_id]).toEqual(["activated", null]);
    const healthy = [...nodes.values()].filter((n) => !Object.values(s.faults).flat().includes(n.node_id));
    expect(healthy).toHaveLength(33);
    expect(healthy.every((n) => n.release_id === id && n.last_ack?.phase === "activated")).toBe(true);
    expect(s.phases).toEqual({ activate_failed: 5, activated: 33, activation_started: 5, offline: 2, verify_failed: 5 });
  }, 60_000);

  it("a release signed by a key the devices do not trust is refused by every device (verify_failed), whatever the control plane says", async () => {
    const { id } = await release(1, testKeys());
    const s = await runFleet(options({ devices: 10 }));
    expect(s).toMatchObject({ converged: true, releases: { none: 10 }, phases: { verify_failed: 10 } });
    for (const n of (await allNodes()).values()) expect(n.last_ack).toMatchObject({ release_id: id, phase: "verify_failed" });
  }, 60_000);

  it("misbehave: after the update to a second release, those devices' deny rate jumps; the others' does not", async () => {
    const { id: v1 } = await release(1);
    let v2 = "";
    let publish: NodeJS.Timeout | undefined;
    let s: FleetSummary;
    try {
      // v2 is published 1.5 s after the whole fleet runs v1 (a loaded machine may take a while to get there).
      s = await runFleet(options({
        devices: 20, faults: { misbehave: 0.25 }, untilConverged: false, durationMs: 12_000,
        onProgress: (f) => {
          if (publish !== undefined || !f.devices.every((d) => d.running?.release_id === v1)) return;
          publish = setTimeout(() => void release(2).then((r) => void (v2 = r.id)), 1500);
        },
      }));
    } finally {
      clearTimeout(publish);
    }
    expect(v2).not.toBe("");
    expect(s.releases).toEqual({ [v2]: 20 });
    const bad = new Set(s.faults.misbehave);
    expect(bad.size).toBe(5);
    const decisions = await allEvents("ai.policy.decision");
    // A node's decision belongs to v2 from its `activated` event for v2 on, and names the release it runs (as the real exporter).
    const switched = new Map((await allEvents("ai.deployment.lifecycle")).filter((e) => e.attributes?.phase === "activated" && e.release_id === v2).map((e) => [e.node_id, Date.parse(e.timestamp)]));
    expect(switched.size).toBe(20);
    const onV2 = (e: StoredEvent): boolean => Date.parse(e.timestamp) >= (switched.get(e.node_id) ?? Infinity);
    expect(decisions.filter((e) => e.release_id !== (onV2(e) ? v2 : v1))).toEqual([]);
    const rate = (pick: (e: StoredEvent) => boolean): number => {
      const d = decisions.filter(pick);
      expect(d.length).toBeGreaterThan(40);
      return d.filter((e) => e.attributes?.decision === "deny").length / d.length;
    };
    expect(rate((e) => bad.has(e.node_id) && onV2(e))).toBeGreaterThan(0.3);
    expect(rate((e) => bad.has(e.node_id) && !onV2(e))).toBeLessThan(0.2);
    expect(rate((e) => !bad.has(e.node_id) && onV2(e))).toBeLessThan(0.2);
  }, 60_000);

  it("the control plane going away mid-run: polls get no answer, the run fails FLEET_TRANSPORT_ERRORS with the errors by code", async () => {
    await release(1);
    const down = setTimeout(() => {
      cp.app.server.closeAllConnections();
      cp.app.server.close();
    }, 1500);
    let s: FleetSummary;
    try {
      s = await runFleet(options({ devices: 10, untilConverged: false, durationMs: 3500, maxTransportErrorRate: 0.01 }));
    } finally {
      clearTimeout(down);
    }
    expect(s.exit_code).toBe(1);
    expect(s.failure?.code).toBe("FLEET_TRANSPORT_ERRORS");
    expect(s.errors.CP_REQUEST_FAILED).toBeGreaterThan(0);
    expect(s.requests.transport_errors).toBe(s.errors.CP_REQUEST_FAILED);
    // Before it went away, the fleet had converged.
    expect(s.phases).toEqual({ activated: 10 });
  }, 60_000);

  it("the same seed assigns the same faults to the same devices; another seed another assignment", async () => {
    await release(1);
    const faults = { corrupt: 0.1, fail: 0.1, hang: 0.1 };
    const a = await runFleet(options({ devices: 20, faults, seed: 42, nodePrefix: "a" }));
    const b = await runFleet(options({ devices: 20, faults, seed: 42, nodePrefix: "b" }));
    const idx = (s: FleetSummary): Record<string, string[]> => Object.fromEntries(Object.entries(s.faults).map(([k, v]) => [k, v.map((n) => n.split("-")[1] ?? "")]));
    expect(idx(a)).toEqual(idx(b));
    expect(a.faults.corrupt).toHaveLength(2);
    expect(assignFaults(20, faults, 42)).toEqual(assignFaults(20, faults, 42));
    expect(assignFaults(20, faults, 42)).not.toEqual(assignFaults(20, faults, 43));
  }, 60_000);
});
