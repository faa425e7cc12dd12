/**
 * The rollback-release model end to end (docs/rollouts.md, "The rollback
 * target"), on SQLite and PostgreSQL: a real control plane on loopback, the
 * fleet simulator's virtual devices (which verify every statement and refuse
 * a sequence not above the one they run, like a node), and a plan whose
 * canary fails. The rollback target is the base's content re-signed above
 * the candidate (signRollbackTrio), published standby; the devices that took
 * the candidate accept it as an upgrade and the plan ends rolled_back.
 */
import { afterEach, expect, it } from "vitest";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { CpClient, CpClientError } from "../../src/cpapi/index.js";
import type { Envelope, Release, Rollout } from "../../src/cpapi/index.js";
import { DEFAULT_BEHAVIOUR, Traffic, VirtualDevice, syntheticReleaseContent, verifyRelease } from "../../src/fleetsim/index.js";
import type { FleetTrust } from "../../src/fleetsim/index.js";
import { seededRng } from "../../src/lib/index.js";
import { signRollbackTrio, trustedKeys } from "../../src/supplychain/index.js";
import type { RollbackTrio, SignedReleaseStatement } from "../../src/supplychain/index.js";
import { openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { describeDialects } from "../helpers/databases.js";

const REPOSITORY = "registry.lab.invalid/fleet/agent";

describeDialects("rollback releases on virtual devices", (db) => {
  let cp: TestCp | undefined;
  afterEach(async () => {
    await cp?.close();
    cp = undefined;
  });

  interface Lab {
    c: TestCp;
    operator: CpClient;
    trust: FleetTrust;
    trio: RollbackTrio;
    devices: VirtualDevice[];
    publish(s: SignedReleaseStatement, standby?: boolean): Promise<Release>;
  }

  /** A control plane on loopback, a signed trio, and `n` enrolled devices that run nothing yet. */
  async function lab(n: number): Promise<Lab> {
    const c = await openTestCp({ location: await db.fresh() });
    cp = c;
    // Devices stamp acks with real time; the control plane refuses an `at` more than 5 minutes off its own.
    c.clock.set(Date.now());
    const url = await c.app.listen({ host: "127.0.0.1", port: 0 });
    const operator = new CpClient({ baseUrl: url, token: c.owner });
    const keys = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const trust: FleetTrust = { trusted: trustedKeys([keys.publicKey]), threshold: 1, repository: REPOSITORY };
    const trio = signRollbackTrio({ base: syntheticReleaseContent("v1"), candidate: syntheticReleaseContent("v2"), keys: [keys.privateKey], repository: REPOSITORY, now: new Date(Date.now() - 1000) });
    const traffic = new Traffic(16);
    const devices: VirtualDevice[] = [];
    for (let i = 0; i < n; i++) {
      const nodeId = `dev-${i}`;
      const random = seededRng(i + 1);
      const d = new VirtualDevice({ nodeId, fault: null, channel: "stable", pollIntervalMs: 100, heartbeatMs: 0, eventFlushMs: 3_600_000, trust, behaviour: { ...DEFAULT_BEHAVIOUR, callsPerPoll: 0 }, random, walGeneration: randomBytes(16).toString("hex") }, operator, traffic);
      const et = await operator.createEnrollmentToken({ node_id: nodeId, labels: { site: "lab" }, ttl_seconds: 3600 });
      expect(await d.enroll(et.token, { site: "lab" })).toBe(true);
      devices.push(d);
    }
    const publish = (s: SignedReleaseStatement, standby = false): Promise<Release> =>
      operator.publishRelease({ statement: s.envelope as Envelope, image: `${REPOSITORY}@${s.predicate.image.digest}`, channel: "stable", standby });
    return { c, operator, trust, trio, devices, publish };
  }

  const tickAll = async (devices: readonly VirtualDevice[]): Promise<void> => {
    for (const d of devices) await d.tick();
  };

  /** The fleet on the base: published alone, every device verifies and activates it. */
  async function onBase(l: Lab): Promise<Release> {
    const base = await l.publish(l.trio.base);
    for (let i = 0; i < 3; i++) await tickAll(l.devices);
    expect(l.devices.map((d) => d.running?.release_id)).toEqual(l.devices.map(() => base.release_id));
    return base;
  }

  it("a plan whose canary fails rolls back, and the devices — which refuse any sequence not above the one they run — confirm the rollback: the plan ends rolled_back", async () => {
    const l = await lab(4);
    const base = await onBase(l);
    const candidate = await l.publish(l.trio.candidate);
    const back = await l.publish(l.trio.rollback, true);
    expect([base.sequence, candidate.sequence, back.sequence]).toEqual([1, 2, 3]);
    // The standby target is not the channel's latest: nobody is offered it outside a rollback.
    expect(back.standby).toBe(true);
    const latest = await l.operator.latestRelease("stable");
    expect(latest.status === "release" ? latest.release.release_id : null).toBe(candidate.release_id);

    let plan = await l.operator.createRollout({
      release_id: candidate.release_id, previous_release_id: back.release_id, target: { nodes: l.devices.map((d) => d.cfg.nodeId) }, max_concurrency: 2,
      stages: [{ stage_id: "canary", batch: { count: 2 } }, { stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 600, late_joiners: "ignore",
    });
    const canary = plan.nodes.filter((n) => n.batch === 0).map((n) => n.node_id);
    expect(canary).toHaveLength(2);
    const byId = (id: string): VirtualDevice => l.devices.find((d) => d.cfg.nodeId === id) as VirtualDevice;
    const good = byId(canary[0] as string);
    const bad = byId(canary[1] as string);
    bad.cfg.fault = "fail";
    const get = (): Promise<Rollout> => l.operator.getRollout(plan.plan_id);
    // The good canary polls first in every round, so it activates the candidate before the bad one spends the
    // budget: the case the old model could never confirm (a device on sequence 2 sent "back" to sequence 1).
    const order = [good, bad, ...l.devices.filter((d) => d !== good && d !== bad)];
    const goodRan: string[] = [good.running?.release_id ?? "none"];

    for (let i = 0; i < 10 && plan.phase !== "rolling_back" && plan.phase !== "rolled_back"; i++) {
      await l.c.app.rollouts.scheduler.tickAll();
      for (const d of order) {
        await d.tick();
        if (d === good && goodRan.at(-1) !== good.running?.release_id) goodRan.push(good.running?.release_id ?? "none");
      }
      plan = await get();
    }
    expect(plan.phase, plan.reason).toBe("rolling_back");
    expect(plan.reason).toMatch(/failure budget spent/);
    expect(goodRan).toEqual([base.release_id, candidate.release_id]);
    expect(good.running).toMatchObject({ release_id: candidate.release_id, sequence: 2 });
    // The bad canary's failure was the candidate's own: its activation of anything else works.
    bad.cfg.fault = null;

    for (let i = 0; i < 10 && plan.phase !== "rolled_back"; i++) {
      await l.c.app.rollouts.scheduler.tickAll();
      await tickAll(order);
      plan = await get();
    }
    expect(plan.phase, plan.reason).toBe("rolled_back");
    for (const id of canary) expect(plan.nodes.find((n) => n.node_id === id)).toMatchObject({ state: "rolled_back", rollback: "confirmed" });
    // Both canaries verified the rollback statement themselves and run it: sequence 3, the base's content.
    for (const d of [good, bad]) {
      expect(d.running).toMatchObject({ release_id: back.release_id, sequence: 3, lock_fingerprint: base.lock_fingerprint });
      expect(d.rejected.has(back.release_id)).toBe(false);
    }
    // The members never started stay on the base, and the control plane's records agree with the devices.
    const others = l.devices.filter((d) => !canary.includes(d.cfg.nodeId));
    for (const d of others) {
      expect(plan.nodes.find((n) => n.node_id === d.cfg.nodeId)?.state).toBe("skipped");
      expect(d.running?.release_id).toBe(base.release_id);
    }
    await tickAll(l.devices); // the heartbeat that follows an activation
    for (const d of l.devices) expect((await l.operator.getNode(d.cfg.nodeId)).release_id).toBe(d.running?.release_id);
  }, 120_000);

  it("attack: a rollback to a lower sequence is refused at plan creation, because nodes would refuse it", async () => {
    const l = await lab(2);
    const base = await onBase(l);
    const candidate = await l.publish(l.trio.candidate);
    const body = { release_id: candidate.release_id, target: { nodes: l.devices.map((d) => d.cfg.nodeId) }, max_concurrency: 1, stages: [{ stage_id: "all", batch: { percent: 100 } }], failure_budget: { max_failures: 0 }, stuck_timeout_seconds: 600, late_joiners: "ignore" as const };
    // Why: a device that activated the candidate (sequence 2) refuses the base's own statement (sequence 1) …
    const refused = verifyRelease(base, l.trust, "stable", candidate.sequence, false, new Date());
    expect(refused).toMatchObject({ ok: false, code: "ACTIVATION_ROLLBACK_REFUSED" });
    // … so the control plane refuses the plan that would send it there, and writes nothing.
    const err = await l.operator.createRollout({ ...body, previous_release_id: base.release_id }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CpClientError);
    expect(err).toMatchObject({ status: 422, problemCode: "ROLLOUT_ROLLBACK_UNREACHABLE" });
    expect((err as CpClientError).detail).toMatch(/^previous_release_id: .*sequence 1, not above .*sequence 2/);
    expect((await l.operator.listRollouts({ limit: 10 })).rollouts).toEqual([]);
    // The same content re-signed above the candidate is accepted by the device, and by plan creation.
    const back = await l.publish(l.trio.rollback, true);
    expect(verifyRelease(back, l.trust, "stable", candidate.sequence, false, new Date())).toMatchObject({ ok: true, sequence: 3 });
    expect((await l.operator.createRollout({ ...body, previous_release_id: back.release_id })).previous_release_id).toBe(back.release_id);
  }, 60_000);
});
