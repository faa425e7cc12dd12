import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdir, mkdtemp, rename, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpClient } from "../../src/cpapi/index.js";
import { initStateRoot, nodeWalLocation, readControlPlane, readNodeState, setTrustRoot, writeControlPlane } from "../../src/node/index.js";
import { MAX_REJECTED, ReleasePoller, ensureEnrolled, defaultNodeId } from "../../src/runtime/index.js";
import type { Enrollment, PollStep } from "../../src/runtime/index.js";
import { LiveWal, readCommitted } from "../../src/telemetry/index.js";
import { seededRng } from "../../src/lib/index.js";
import type { Clock } from "../../src/lib/index.js";
import { makeRelease, testKeys } from "../helpers/release.js";
import type { TestKeys } from "../helpers/release.js";
import { releaseRecord, startCpNodeServer } from "../helpers/cp-node-server.js";
import type { CpNodeServer } from "../helpers/cp-node-server.js";
import { codeOf } from "../helpers/caught.js";

/**
 * The node side of the control plane against a real loopback server, real
 * signed releases in an OCI layout, a real state root and its real WAL:
 * enrollment, the poll → candidate → verify → activate path, the lifecycle
 * phases in the WAL and the acks, and what a hostile or absent control plane
 * can (not) do.
 */
describe("release poller", () => {
  let dir: string;
  let stateRoot: string;
  let keys: TestKeys;
  let cp: CpNodeServer;
  let wal: LiveWal | undefined;
  let t: number;
  const clock: Clock = { now: () => t };

  beforeEach(async () => {
    t = Date.now();
    dir = await mkdtemp(join(tmpdir(), "poller-"));
    stateRoot = join(dir, "state");
    keys = testKeys();
    await initStateRoot(stateRoot);
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: `oci:${dir}/reg` });
    cp = await startCpNodeServer();
    cp.enrollTokens.set("enroll-1", {});
  });
  afterEach(async () => {
    await wal?.close();
    wal = undefined;
    await cp.close();
  });

  const enroll = (o: { token?: string; nodeId?: string; server?: string } = {}): Promise<Enrollment> =>
    ensureEnrolled({ stateRoot, server: o.server ?? cp.url, nodeId: o.nodeId ?? "edge-1", ...(o.token !== null ? { enrollToken: o.token ?? "enroll-1" } : {}), clock });

  async function poller(o: { timeoutMs?: number; intervalMs?: number; polledEvery?: number; maxRejected?: number; repositoryOptions?: { username: string; password: string; plainHttp: boolean } } = {}): Promise<ReleasePoller> {
    const e = await enroll();
    const { dir: walDir, otherState } = nodeWalLocation(stateRoot);
    wal = await LiveWal.open(walDir, { otherState });
    const w = wal;
    const client = o.timeoutMs !== undefined ? new CpClient({ baseUrl: cp.url, token: e.file.credential, timeoutMs: o.timeoutMs }) : e.client;
    return new ReleasePoller({ stateRoot, client, enrollment: e.file, channel: "stable", wal: w, walGeneration: () => w.current.generation, clock, random: seededRng(7), intervalMs: o.intervalMs ?? 30_000, ...(o.polledEvery !== undefined ? { polledEvery: o.polledEvery } : {}), ...(o.repositoryOptions ? { repositoryOptions: o.repositoryOptions } : {}), ...(o.maxRejected !== undefined ? { maxRejected: o.maxRejected } : {}) });
  }

  /** The lifecycle events in the WAL, as `phase release_id` strings. */
  async function phases(): Promise<{ phase: string; release_id: string | null; error_code?: string; lock_fingerprint: string | null }[]> {
    const { entries } = await readCommitted(nodeWalLocation(stateRoot).dir);
    return entries.map((e) => e.event).filter((e) => e.type === "ai.deployment.lifecycle")
      .map((e) => ({ phase: e.phase as string, release_id: e.release_id as string | null, lock_fingerprint: e.lock_fingerprint as string | null, ...(e.error_code !== undefined ? { error_code: e.error_code as string } : {}) }));
  }

  async function publish(seq: number, o: { signer?: TestKeys; tag?: string } = {}) {
    const rel = await makeRelease({ ref: `oci:${dir}/reg:${o.tag ?? `v${seq}`}`, keys: o.signer ?? keys, sequence: seq, agentText: `agent ${seq}`, repository: `oci:${dir}/reg` });
    const record = await releaseRecord(rel);
    cp.releases.set(record.release_id, record);
    return { rel, record };
  }

  describe("enrollment", () => {
    it("enrolls on the first start, keeps the credential in control-plane.json (0600), and reuses it without calling the control plane", async () => {
      const first = await enroll();
      expect(first.enrolled).toBe(true);
      const file = await readControlPlane(stateRoot);
      expect(file).toMatchObject({ version: 1, node_id: "edge-1", credential: first.file.credential });
      expect((await stat(join(stateRoot, "control-plane.json"))).mode & 0o777).toBe(0o600);
      await cp.close(); // a later start does not need the control plane
      const again = await enroll({ token: "enroll-1" });
      expect(again.enrolled).toBe(false);
      expect(again.file.credential).toBe(first.file.credential);
      cp = await startCpNodeServer();
    });

    it("a wrong or spent enrollment token is one error with a hint, and nothing is stored", async () => {
      await enroll();
      const other = join(dir, "state2");
      const e = await ensureEnrolled({ stateRoot: other, server: cp.url, enrollToken: "enroll-1", nodeId: "edge-2" }).then(() => undefined, (x: unknown) => x as Error & { code: string; hint: string });
      expect(e?.code).toBe("NODE_ENROLLMENT_REFUSED");
      expect(e?.message).toMatch(/401 ENROLLMENT_TOKEN_INVALID/);
      expect(e?.message).not.toContain("\n");
      expect(e?.hint).toMatch(/single-use/);
      expect(await readControlPlane(other)).toBeUndefined();
      expect(await codeOf(ensureEnrolled({ stateRoot: other, server: cp.url }))).toBe("NODE_NOT_ENROLLED/1");
    });

    it("refuses another control plane than the one enrolled with, and derives a valid default node id from the host name", async () => {
      await enroll();
      expect(await codeOf(enroll({ server: "http://127.0.0.1:9" }))).toBe("NODE_SERVER_MISMATCH/1");
      expect(defaultNodeId("Edge_Box.Local")).toBe("edge_box.local");
      expect(defaultNodeId("--weird host!")).toBe("weird-host-");
      expect(defaultNodeId("x".repeat(80))).toHaveLength(63);
      expect(defaultNodeId("")).toBe("node");
    });

    it("attack clear-text credentials: a node refuses to send its enrollment token or stored credential to a non-loopback control plane over plain http, before any request (CP_PLAIN_HTTP_REFUSED)", async () => {
      const far = "http://192.0.2.10:8888";
      const t0 = Date.now();
      expect(await codeOf(ensureEnrolled({ stateRoot, server: far, enrollToken: "enroll-1", nodeId: "edge-1", timeoutMs: 1500 }))).toBe("CP_PLAIN_HTTP_REFUSED/2");
      expect(await readControlPlane(stateRoot)).toBeUndefined();
      // A node enrolled before keeps its credential to itself too (heartbeats and acks would carry it).
      await writeControlPlane(stateRoot, { version: 1, server: far, node_id: "edge-1", credential: "aon_secret", enrolled_at: new Date().toISOString() });
      expect(await codeOf(ensureEnrolled({ stateRoot, server: far, timeoutMs: 1500 }))).toBe("CP_PLAIN_HTTP_REFUSED/2");
      expect(Date.now() - t0).toBeLessThan(1000); // refused up front, not tried and timed out
      // Loopback (any spelling), https, and an explicit --server-plain-http are allowed.
      expect(await codeOf(ensureEnrolled({ stateRoot, server: far, plainHttp: true }))).toBe("NO_ERROR");
      for (const ok of ["http://localhost:9", "http://[::1]:9", "http://127.0.0.2:9", "https://192.0.2.10:8888"]) {
        expect(await codeOf(ensureEnrolled({ stateRoot: join(dir, "s-ok"), server: ok, timeoutMs: 200 }))).toBe("NODE_NOT_ENROLLED/1");
      }
    });
  });

  it("poll → candidate → verified → activated: every phase in the WAL in order, acked in order, and the heartbeat names the release", async () => {
    const p = await poller();
    const { rel, record } = await publish(1);
    const step = await p.pollOnce();
    expect(step.candidate).toEqual({ release_id: record.release_id, result: "activated" });
    const fp = rel.signed.statement.predicate.lock.behavioral_fingerprint;
    const order = ["polled", "candidate_detected", "verify_started", "verify_passed", "activation_started", "activated"];
    expect((await phases()).map((e) => `${e.phase} ${e.release_id}`)).toEqual(order.map((ph) => `${ph} ${record.release_id}`));
    expect((await phases()).every((e) => e.lock_fingerprint === fp)).toBe(true);
    expect(cp.acks.map((a) => a.body.phase)).toEqual(order);
    expect(cp.acks.every((a) => a.node_id === "edge-1" && a.body.release_id === record.release_id)).toBe(true);
    const state = await readNodeState(stateRoot);
    expect(state.activation).toMatchObject({ sequence: 1, image_digest: rel.digest, statement_digest: rel.signed.statement.digest });
    expect((await readControlPlane(stateRoot))?.activated_release).toEqual({ release_id: record.release_id, statement_digest: rel.signed.statement.digest });
    // The next poll heartbeats at once with the new activation.
    await p.pollOnce();
    expect(cp.heartbeats.at(-1)?.body).toMatchObject({ release_id: record.release_id, activation_sequence: 1, lock_fingerprint: fp, boot_epoch: 0, wal_generation: wal?.current.generation });
    expect(cp.heartbeats[0]?.body.release_id).toBeNull();
  });

  it("a 304 costs no verification: the registry is not read and nothing is written to the WAL", async () => {
    const p = await poller();
    await publish(1);
    await p.pollOnce();
    const before = await phases();
    await rename(join(dir, "reg"), join(dir, "reg-away")); // any verification would now fail
    const steps: PollStep[] = [];
    for (let i = 0; i < 5; i++) steps.push(await p.pollOnce());
    expect(steps.map((s) => s.outcome)).toEqual(Array(5).fill("not_modified"));
    expect(steps.every((s) => s.candidate === undefined)).toBe(true);
    expect(cp.latestCalls.slice(-5).every((c) => c.status === 304 && c.ifNoneMatch === `"${[...cp.releases.keys()][0]}"`)).toBe(true);
    expect(await phases()).toEqual(before);
  });

  it("attack: a control plane that lies about the release (statement re-signed by another key) → verify_failed, nothing activated, not retried every poll", async () => {
    const p = await poller();
    const { record: good } = await publish(1);
    await p.pollOnce();
    const policyBefore = await readNodeState(stateRoot);
    const { record: forged } = await publish(2, { signer: testKeys() });
    const step = await p.pollOnce();
    expect(step.candidate).toEqual({ release_id: forged.release_id, result: "verify_failed" });
    const failed = (await phases()).filter((e) => e.release_id === forged.release_id).map((e) => e.phase);
    expect(failed).toEqual(["polled", "candidate_detected", "verify_started", "verify_failed"]);
    expect((await phases()).at(-1)?.error_code).toMatch(/^[A-Z_]+$/);
    expect(cp.acks.at(-1)?.body).toMatchObject({ phase: "verify_failed", release_id: forged.release_id });
    expect(cp.acks.at(-1)?.body.detail).toMatch(/^[A-Z_]+: /);
    expect((await readNodeState(stateRoot)).activation).toEqual(policyBefore.activation);
    expect((await readNodeState(stateRoot)).current).toEqual(policyBefore.current);
    // Remembered: the next polls (304s) do not verify it again.
    const again = await p.pollOnce();
    expect(again.candidate).toEqual({ release_id: forged.release_id, result: "rejected_before" });
    expect((await phases()).filter((e) => e.phase === "verify_started")).toHaveLength(2);
    // Another release is considered on its own (the rejection stays remembered): a real v3 is activated.
    const { record: v3 } = await publish(3);
    expect((await p.pollOnce()).candidate).toEqual({ release_id: v3.release_id, result: "activated" });
    expect(good.release_id).not.toBe(v3.release_id);
  });

  it("attack: a control plane that offers an older release under a higher claimed sequence → refused by the node's own rules (verify_failed), policy unchanged", async () => {
    const p = await poller();
    const { rel: v1 } = await publish(1);
    await publish(2);
    await p.pollOnce(); // activates v2
    const before = await readNodeState(stateRoot);
    cp.releases.clear();
    const lie = await releaseRecord(v1, { sequence: 9 });
    cp.releases.set(lie.release_id, lie);
    const step = await p.pollOnce();
    expect(step.candidate?.result).toBe("verify_failed");
    expect((await phases()).at(-1)).toMatchObject({ phase: "verify_failed", error_code: "ACTIVATION_ROLLBACK_REFUSED" });
    expect((await readNodeState(stateRoot)).activation).toEqual(before.activation);
  });

  describe("attack: a control plane choosing where the node pulls from", () => {
    it("attack credential theft: a control plane naming an image on a host of its choosing → verify_failed RELEASE_LOCATION_UNTRUSTED, acked, and that host is never contacted (the node's registry credentials stay home)", async () => {
      const seen: (string | undefined)[] = [];
      const evil = createServer((req, res) => {
        seen.push(req.headers.authorization);
        res.writeHead(401, { "www-authenticate": 'Basic realm="evil"' }).end();
      });
      await new Promise<void>((r) => evil.listen(0, "127.0.0.1", () => r()));
      try {
        const port = (evil.address() as AddressInfo).port;
        // The operator runs the node with credentials for ITS registry (AUTONOMY_REGISTRY_USERNAME/PASSWORD → repositoryOptions).
        const p = await poller({ repositoryOptions: { username: "node-robot", password: "registry-secret", plainHttp: true } });
        const { record } = await publish(1);
        cp.releases.set(record.release_id, { ...record, image: `127.0.0.1:${port}/team/agent@${record.image_digest}` });
        const step = await p.pollOnce();
        expect(step.candidate).toEqual({ release_id: record.release_id, result: "verify_failed" });
        expect(seen).toEqual([]);
        expect((await phases()).at(-1)).toMatchObject({ phase: "verify_failed", release_id: record.release_id, error_code: "RELEASE_LOCATION_UNTRUSTED" });
        expect(cp.acks.at(-1)?.body).toMatchObject({ phase: "verify_failed", release_id: record.release_id });
        expect(cp.acks.at(-1)?.body.detail).toMatch(/^RELEASE_LOCATION_UNTRUSTED: /);
        expect((await readNodeState(stateRoot)).activation).toBeUndefined();
        // Remembered as rejected, not retried.
        expect((await p.pollOnce()).candidate?.result).toBe("rejected_before");
        expect(seen).toEqual([]);
      } finally {
        await new Promise<void>((r) => evil.close(() => r()));
      }
    });

    it("attack local path probe: a control plane naming a local oci: path → refused before the path is opened; the ack names neither that path nor its content", async () => {
      const p = await poller();
      const { record } = await publish(1);
      const local = join(dir, "private");
      await mkdir(local, { recursive: true });
      await writeFile(join(local, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
      await writeFile(join(local, "index.json"), "db_password=hunter2-top-secret and more text");
      cp.releases.set(record.release_id, { ...record, image: `oci:${local}:v1` });
      expect((await p.pollOnce()).candidate?.result).toBe("verify_failed");
      const acked = cp.acks.map((a) => JSON.stringify(a.body)).join("\n");
      expect(acked).toContain("RELEASE_LOCATION_UNTRUSTED");
      expect(acked).not.toContain("hunter2");
      expect(acked).not.toContain(local);
    });

    it("takes only the digest from the control plane: a release naming the trusted repository under a bogus tag is pulled by digest from the trust root's repository and activated", async () => {
      const p = await poller();
      const { record } = await publish(1);
      cp.releases.set(record.release_id, { ...record, image: `oci:${dir}/reg:no-such-tag` });
      expect((await p.pollOnce()).candidate).toEqual({ release_id: record.release_id, result: "activated" });
      expect((await readNodeState(stateRoot)).activation?.image_digest).toBe(record.image_digest);
    });

    it("attack two digests: a release whose image names the trusted repository at another digest than image_digest → RELEASE_LOCATION_UNTRUSTED, nothing fetched", async () => {
      const p = await poller();
      const { record } = await publish(1);
      cp.releases.set(record.release_id, { ...record, image: `oci:${dir}/reg@sha256:${"0".repeat(64)}` });
      expect((await p.pollOnce()).candidate?.result).toBe("verify_failed");
      expect((await phases()).at(-1)).toMatchObject({ phase: "verify_failed", error_code: "RELEASE_LOCATION_UNTRUSTED" });
      expect((await readNodeState(stateRoot)).activation).toBeUndefined();
    });
  });

  describe("attack: a control plane alternating forged releases", () => {
    it("attack verify flood: a control plane alternating between two forged releases makes the node verify each once, never again on later polls", async () => {
      const p = await poller();
      await publish(1);
      await p.pollOnce();
      const forgedA = (await publish(2, { signer: testKeys(), tag: "fa" })).record;
      const forgedB = (await publish(2, { signer: testKeys(), tag: "fb" })).record;
      const results: string[] = [];
      for (let i = 0; i < 6; i++) {
        const offer = i % 2 === 0 ? forgedA : forgedB;
        cp.releases.delete(forgedA.release_id);
        cp.releases.delete(forgedB.release_id);
        cp.releases.set(offer.release_id, offer);
        results.push((await p.pollOnce()).candidate?.result ?? "none");
      }
      expect(results).toEqual(["verify_failed", "verify_failed", "rejected_before", "rejected_before", "rejected_before", "rejected_before"]);
      const verifies = (await phases()).filter((e) => e.phase === "verify_started" && (e.release_id === forgedA.release_id || e.release_id === forgedB.release_id));
      expect(verifies).toHaveLength(2);
      expect(p.status().rejected).toEqual([forgedA.release_id, forgedB.release_id]);
    });

    it("the rejected memory is bounded (newest MAX_REJECTED) and voided by a trust root change: a release refused under the old keys verifies under the new ones", async () => {
      expect(MAX_REJECTED).toBe(64);
      const p = await poller({ maxRejected: 2 });
      const other = testKeys();
      const offer = (r: { release_id: string }): void => {
        for (const id of [...cp.releases.keys()]) if (id !== r.release_id) cp.releases.delete(id);
      };
      const { record: forged } = await publish(1, { signer: other });
      expect((await p.pollOnce()).candidate?.result).toBe("verify_failed");
      expect((await p.pollOnce()).candidate?.result).toBe("rejected_before");
      // Two more rejections push the oldest out of a memory of 2: it costs one verification again, then is remembered.
      const f2 = (await publish(2, { signer: testKeys(), tag: "f2" })).record;
      offer(f2);
      expect((await p.pollOnce()).candidate?.result).toBe("verify_failed");
      const f3 = (await publish(3, { signer: testKeys(), tag: "f3" })).record;
      offer(f3);
      expect((await p.pollOnce()).candidate?.result).toBe("verify_failed");
      expect(p.status().rejected).toEqual([f2.release_id, f3.release_id]);
      cp.releases.set(forged.release_id, forged);
      offer(forged);
      expect((await p.pollOnce()).candidate?.result).toBe("verify_failed");
      expect((await p.pollOnce()).candidate?.result).toBe("rejected_before");
      expect(p.status().rejected).toEqual([f3.release_id, forged.release_id]);
      // The operator now trusts that key (locally, never by a release): the release is considered again.
      t += 1000;
      await setTrustRoot(stateRoot, { keys: [keys.publicPem, other.publicPem], clock });
      expect((await p.pollOnce()).candidate).toEqual({ release_id: forged.release_id, result: "activated" });
      expect(p.status().rejected).toEqual([]);
    });
  });

  describe("a control plane that is down or broken", () => {
    for (const fault of ["500", "garbage", "hang"] as const) {
      it(`answers ${fault}: backoff grows to its cap, no crash, the policy in force is unchanged, and polling resumes when it recovers`, async () => {
        const p = await poller({ timeoutMs: 750, intervalMs: 10_000 }); // short, but not so short that a loaded machine misses a healthy answer
        await publish(1);
        await p.pollOnce();
        const before = await readNodeState(stateRoot);
        cp.fault = fault;
        const delays: number[] = [];
        for (let i = 0; i < 12; i++) {
          const s = await p.pollOnce();
          expect(s.outcome).toBe("error");
          delays.push(s.delayMs);
        }
        // Full jitter: each delay in [1 s, min(cap, 2 s · 2^(n−1))]; the cap (5 min) bounds it.
        delays.forEach((d, i) => {
          expect(d).toBeGreaterThanOrEqual(1000);
          expect(d).toBeLessThanOrEqual(Math.min(300_000, 2000 * 2 ** i));
        });
        expect(Math.max(...delays.slice(6))).toBeGreaterThan(Math.max(...delays.slice(0, 3)));
        expect(await readNodeState(stateRoot)).toEqual(before);
        // One `polled` for the outage, not one per failed poll.
        const errs = (await phases()).filter((e) => e.phase === "polled" && e.error_code !== undefined);
        expect(errs).toHaveLength(1);
        expect(errs[0]?.error_code).toMatch(fault === "garbage" ? /^CP_RESPONSE_INVALID/ : /^CP_REQUEST_(FAILED|REJECTED)/);
        cp.fault = "none";
        const back = await p.pollOnce();
        expect(back.outcome).not.toBe("error");
        expect(back.delayMs).toBeGreaterThanOrEqual(5000);
        expect(back.delayMs).toBeLessThanOrEqual(10_000);
      });
    }

    it("a busy control plane's Retry-After is honoured as the floor of the next delay", async () => {
      const p = await poller();
      cp.fault = "busy";
      const s = await p.pollOnce();
      expect(s.error).toBe("CP_REQUEST_REJECTED/STORE_BUSY");
      expect(s.delayMs).toBe(120_000);
    });

    it("the steady interval is jittered over [interval/2, interval] and replays from the seed", async () => {
      const p = await poller({ intervalMs: 30_000 });
      const delays: number[] = [];
      for (let i = 0; i < 20; i++) delays.push((await p.pollOnce()).delayMs);
      expect(delays.every((d) => d >= 15_000 && d <= 30_000)).toBe(true);
      expect(new Set(delays).size).toBeGreaterThan(10);
      // Nothing published: `none` once in the WAL, then nothing more.
      expect((await phases()).map((e) => e.phase)).toEqual(["polled"]);
    });
  });

  it("an unchanged poll is written once per polledEvery polls, a change at once", async () => {
    const p = await poller({ polledEvery: 5 });
    for (let i = 0; i < 11; i++) await p.pollOnce(); // none, then 10 unchanged: written at 0, 5, 10
    expect((await phases()).map((e) => e.phase)).toEqual(["polled", "polled", "polled"]);
    const { record } = await publish(1);
    await p.pollOnce();
    expect((await phases()).slice(3).map((e) => `${e.phase} ${e.release_id}`)[0]).toBe(`polled ${record.release_id}`);
  });

  it("a transient failure (the registry is not there yet) is retried with backoff, not every poll, and activates once it is", async () => {
    const p = await poller();
    const { record } = await publish(1);
    await rename(join(dir, "reg"), join(dir, "reg-later"));
    const first = await p.pollOnce();
    expect(first.candidate?.result).toBe("verify_failed");
    expect((await phases()).at(-1)?.error_code).not.toMatch(/^ACTIVATION_|^STATEMENT_|^SIGNATURE/);
    expect((await p.pollOnce()).candidate?.result).toBe("retry_later");
    await rename(join(dir, "reg-later"), join(dir, "reg"));
    t += 10 * 60_000; // past the backoff
    const later = await p.pollOnce();
    expect(later.candidate).toEqual({ release_id: record.release_id, result: "activated" });
    const ph = (await phases()).map((e) => e.phase);
    expect(ph.filter((x) => x === "candidate_detected")).toHaveLength(1);
    expect(ph.filter((x) => x === "verify_started")).toHaveLength(2);
  });
});
