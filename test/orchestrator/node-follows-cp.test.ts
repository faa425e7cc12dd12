/**
 * A node following the REAL control plane (buildApp over SQLite, listening on
 * loopback): an operator publishes signed releases with the typed client, the
 * node enrolls with a single-use token, polls, verifies against its own trust
 * root and activates; the control plane's 304 costs the node nothing; a
 * release the node's keys did not sign is refused whatever the control plane
 * says about it.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpClient } from "../../src/cpapi/index.js";
import type { Envelope } from "../../src/cpapi/index.js";
import { initStateRoot, nodeWalLocation, readNodeState, setTrustRoot } from "../../src/node/index.js";
import { ReleasePoller, ensureEnrolled } from "../../src/runtime/index.js";
import { LiveWal, readCommitted } from "../../src/telemetry/index.js";
import { formatReference } from "../../src/oci/index.js";
import { seededRng } from "../../src/lib/index.js";
import { makeRelease, testKeys } from "../helpers/release.js";
import type { MadeRelease, TestKeys } from "../helpers/release.js";
import { openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";

describe("a node following the real control plane", () => {
  let cp: TestCp;
  let url: string;
  let operator: CpClient;
  let dir: string;
  let stateRoot: string;
  let keys: TestKeys;
  let wal: LiveWal | undefined;

  beforeEach(async () => {
    cp = await openTestCp();
    // The node stamps acks with real time; the control plane refuses an `at` more than 5 minutes off its own.
    cp.clock.set(Date.now());
    url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
    operator = new CpClient({ baseUrl: url, token: cp.owner });
    dir = await mkdtemp(join(tmpdir(), "node-cp-"));
    stateRoot = join(dir, "node");
    keys = testKeys();
    await initStateRoot(stateRoot);
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: `oci:${dir}/reg` });
  });
  afterEach(async () => {
    await wal?.close();
    wal = undefined;
    await cp.close();
  });

  async function publish(rel: MadeRelease): Promise<string> {
    const envelope = JSON.parse(Buffer.from(await rel.repo.getBlob(rel.signed.statement.envelope)).toString("utf8")) as Envelope;
    return (await operator.publishRelease({ statement: envelope, image: formatReference(rel.ref), channel: "stable" })).release_id;
  }

  async function lifecycle(): Promise<{ phase: string; release_id: unknown; error_code?: unknown }[]> {
    const { entries } = await readCommitted(nodeWalLocation(stateRoot).dir);
    return entries.map((e) => e.event).filter((e) => e.type === "ai.deployment.lifecycle")
      .map((e) => ({ phase: String(e.phase), release_id: e.release_id, ...(e.error_code !== undefined ? { error_code: e.error_code } : {}) }));
  }

  it("enrolls, activates what the operator published, answers 304 afterwards, and refuses a release signed by another key", async () => {
    const et = await operator.createEnrollmentToken({ node_id: "edge-1" });
    const enrollment = await ensureEnrolled({ stateRoot, server: url, enrollToken: et.token, nodeId: "edge-1" });
    expect(enrollment).toMatchObject({ nodeId: "edge-1", enrolled: true });
    // The token was single-use: a second node cannot spend it.
    await expect(ensureEnrolled({ stateRoot: join(dir, "other"), server: url, enrollToken: et.token, nodeId: "edge-1" })).rejects.toMatchObject({ code: "NODE_ENROLLMENT_REFUSED" });

    const { dir: walDir, otherState } = nodeWalLocation(stateRoot);
    wal = await LiveWal.open(walDir, { otherState });
    const poller = new ReleasePoller({ stateRoot, client: enrollment.client, enrollment: enrollment.file, channel: "stable", wal, random: seededRng(3) });

    expect((await poller.pollOnce()).outcome).toBe("none");
    const v1 = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1, agentText: "one", repository: `oci:${dir}/reg` });
    const id1 = await publish(v1);
    expect((await poller.pollOnce()).candidate).toEqual({ release_id: id1, result: "activated" });
    expect((await readNodeState(stateRoot)).activation).toMatchObject({ sequence: 1, statement_digest: v1.signed.statement.digest });
    expect((await poller.pollOnce()).outcome).toBe("not_modified");

    const forged = await makeRelease({ ref: `oci:${dir}/reg:v2`, keys: testKeys(), sequence: 2, agentText: "two", repository: `oci:${dir}/reg` });
    const id2 = await publish(forged);
    expect((await poller.pollOnce()).candidate).toEqual({ release_id: id2, result: "verify_failed" });
    expect((await readNodeState(stateRoot)).activation?.sequence).toBe(1);

    expect((await lifecycle()).map((e) => `${e.phase} ${String(e.release_id)}`)).toEqual([
      "polled null",
      ...["polled", "candidate_detected", "verify_started", "verify_passed", "activation_started", "activated"].map((p) => `${p} ${id1}`),
      ...["polled", "candidate_detected", "verify_started", "verify_failed"].map((p) => `${p} ${id2}`),
    ]);
    // Acks and heartbeats need the nodes area (POST /v1/nodes/{id}/ack, …/heartbeat): when this
    // control plane has it, the node's path is there; until then each one is a counted failure, never a crash.
    const s = poller.status();
    if (cp.app.hasRoute({ method: "POST", url: "/v1/nodes/:node_id/ack" })) {
      expect(s.ack_failures).toBe(0);
      const node = await operator.getNode("edge-1");
      expect(node.last_ack).toMatchObject({ release_id: id2, phase: "verify_failed" });
      // The heartbeat after the activation named it; the refused release changed nothing.
      expect(node).toMatchObject({ release_id: id1, activation_sequence: 1, lock_fingerprint: v1.signed.statement.predicate.lock.behavioral_fingerprint, boot_epoch: 0 });
      expect(s.heartbeat_failures).toBe(0);
    } else {
      expect(s.ack_failures).toBe(10); // every phase that names a release (6 + 4)
      expect(s.heartbeat_failures).toBeGreaterThan(0);
    }
  });
});
