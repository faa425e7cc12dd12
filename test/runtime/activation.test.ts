import { describe, expect, it, beforeEach } from "vitest";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activateRelease } from "../../src/runtime/index.js";
import { LayoutRepository, listReferrers, openRepository, parseReference } from "../../src/oci/index.js";
import { loadPolicy, readNodeState, setTrustRoot, LivePolicy, policyPaths, bundlePath } from "../../src/node/index.js";
import { publishStatement, rollbackRelease, signStatement } from "../../src/supplychain/index.js";
import { buildBundle } from "../../src/policy/index.js";
import { makeRelease, testKeys, policyDir } from "../helpers/release.js";
import type { TestKeys } from "../helpers/release.js";
import { uncompiledBundle } from "../helpers/policies.js";
import { codeOf } from "../helpers/caught.js";

describe("runtime activation", () => {
  let dir: string;
  let stateRoot: string;
  let keys: TestKeys;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "activate-"));
    stateRoot = join(dir, "state");
    keys = testKeys();
    // makeRelease signs `oci:<dir>/reg` as the repository: the node follows it.
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: `oci:${dir}/reg` });
  });
  const activate = (ref: Parameters<typeof activateRelease>[0]["ref"]) => activateRelease({ ref, stateRoot });

  it("verifies, keeps a copy, loads the policy and records the activation in one commit", async () => {
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1 });
    const r = await activate(rel.ref);
    expect(r.changed).toBe(true);
    const state = await readNodeState(stateRoot);
    expect(state.activation?.image_digest).toBe(rel.digest);
    expect(state.activation?.statement_digest).toBe(rel.signed.statement.digest);
    expect(state.activation?.sequence).toBe(1);
    expect(state.current?.digest).toBe(rel.bundleDigest);
    expect(state.highest_sequence).toBe(1);
    expect(state.highest_statement_digest).toBe(rel.signed.statement.digest);
    const store = new LayoutRepository(join(stateRoot, "activation", "store"));
    expect((await store.resolve("seq-1")).digest).toBe(rel.digest);
    expect((await listReferrers(store, rel.digest)).length).toBeGreaterThanOrEqual(3);
    expect(await readFile(bundlePath(stateRoot, rel.bundleDigest))).toEqual(rel.bundleBytes);
  });

  it("treats re-activating the active release as a no-op", async () => {
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1 });
    await activate(rel.ref);
    const before = await readNodeState(stateRoot);
    const r = await activate(rel.ref);
    expect(r.changed).toBe(false);
    expect((await readNodeState(stateRoot)).generation).toBe(before.generation + 1);
    expect((await readNodeState(stateRoot)).activation).toEqual(before.activation);
  });

  describe("when a release is older than one already activated (rollback protection)", () => {
    it("refuses it with ACTIVATION_ROLLBACK_REFUSED (exit 4), before storing anything, and changes nothing", async () => {
      const v1 = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1, agentText: "one" });
      const v2 = await makeRelease({ ref: `oci:${dir}/reg:v2`, keys, sequence: 2, agentText: "two" });
      await activate(v2.ref);
      const before = await readNodeState(stateRoot);
      expect(await codeOf(activate(v1.ref))).toBe("ACTIVATION_ROLLBACK_REFUSED/4");
      expect(await readNodeState(stateRoot)).toEqual(before);
      expect((await new LayoutRepository(join(stateRoot, "activation", "store")).listTags()).filter((t) => t.startsWith("seq-"))).toEqual(["seq-2"]);
    });

    it("accepts the older content re-signed as a new release with a higher sequence (release rollback)", async () => {
      const v1 = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1, agentText: "one" });
      const v2 = await makeRelease({ ref: `oci:${dir}/reg:v2`, keys, sequence: 2, agentText: "two" });
      await activate(v1.ref);
      await activate(v2.ref);
      const target = parseReference(`oci:${dir}/reg:prod`);
      const back = await rollbackRelease({
        older: { repo: v1.repo, target: "v1" }, target: { repo: openRepository(target), ref: target },
        keys: [keys.privateKey], sequence: 3, repository: `oci:${dir}/reg`, now: new Date(),
      });
      expect(back.signed.digest).toBe(v1.digest);
      await activate(target);
      const state = await readNodeState(stateRoot);
      expect(state.activation).toMatchObject({ sequence: 3, image_digest: v1.digest, policy_digest: v1.bundleDigest });
      expect(state.highest_sequence).toBe(3);
      // The old statement itself stays refused.
      expect(await codeOf(activate(v2.ref))).toBe("ACTIVATION_ROLLBACK_REFUSED/4");
    });

    it("refuses a different statement under the sequence already recorded (ACTIVATION_EQUIVOCATION) and records it", async () => {
      const a = await makeRelease({ ref: `oci:${dir}/reg:a`, keys, sequence: 3, agentText: "a" });
      const b = await makeRelease({ ref: `oci:${dir}/reg:b`, keys, sequence: 3, agentText: "b" });
      await activate(a.ref);
      expect(await codeOf(activate(b.ref))).toBe("ACTIVATION_EQUIVOCATION/4");
      const state = await readNodeState(stateRoot);
      expect(state.activation?.image_digest).toBe(a.digest);
      expect(state.equivocations.map((e) => [e.sequence, e.recorded, e.offered])).toEqual([[3, a.signed.statement.digest, b.signed.statement.digest]]);
    });
  });

  it("records two valid statements under one sequence found in the registry (STATEMENT_EQUIVOCATION)", async () => {
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 2 });
    await activate(rel.ref);
    // The same release signed again at the same sequence, a second later: a different statement. `autonomy sign`
    // now reuses the published statement instead, so the second one is signed and published directly (a stolen key).
    const p = rel.signed.statement.predicate;
    const again = signStatement({ ...p, issued_at: new Date(Date.parse(p.issued_at) + 1000).toISOString() }, [keys.privateKey]);
    await publishStatement(rel.repo, await rel.repo.resolve(rel.digest), again.envelope);
    expect(await codeOf(activate(rel.ref))).toBe("STATEMENT_EQUIVOCATION/4");
    const s = await readNodeState(stateRoot);
    expect(s.equivocations.map((e) => [e.sequence, e.recorded, e.offered])).toEqual([[2, rel.signed.statement.digest, again.digest]]);
    expect(s.activation?.statement_digest).toBe(rel.signed.statement.digest);
  });

  it("fails closed without a trust root (TRUST_NOT_CONFIGURED)", async () => {
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1 });
    expect(await codeOf(activateRelease({ ref: rel.ref, stateRoot: join(dir, "untrusting") }))).toBe("TRUST_NOT_CONFIGURED/1");
  });

  it("refuses a release for another channel or repository than the node follows", async () => {
    const staging = await makeRelease({ ref: `oci:${dir}/reg:s`, keys, sequence: 1, channel: "staging" });
    expect(await codeOf(activate(staging.ref))).toMatch(/\/4$/);
    const other = await makeRelease({ ref: `oci:${dir}/reg:o`, keys, sequence: 1, repository: "registry.example/other/agent" });
    expect(await codeOf(activate(other.ref))).toMatch(/\/4$/);
    expect((await readNodeState(stateRoot)).activation).toBeUndefined();
  });

  it("refuses a release signed by an untrusted key and leaves the node as it was", async () => {
    const good = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1, agentText: "good" });
    await activate(good.ref);
    const before = await readNodeState(stateRoot);
    const evil = await makeRelease({ ref: `oci:${dir}/reg:v2`, keys: testKeys(), sequence: 9, agentText: "evil" });
    expect(await codeOf(activate(evil.ref))).toMatch(/\/4$/);
    expect(await readNodeState(stateRoot)).toEqual(before);
  });

  it("refuses a release whose bundle needs another runtime version (compatibility check) and changes nothing", async () => {
    const good = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1, agentText: "good" });
    await activate(good.ref);
    const before = await readNodeState(stateRoot);
    const future = await makeRelease({ ref: `oci:${dir}/reg:v2`, keys, sequence: 2, agentText: "future", runtimeVersion: ">=99.0.0" });
    expect(await codeOf(activate(future.ref))).toBe("BUNDLE_INCOMPATIBLE/1");
    expect(await readNodeState(stateRoot)).toEqual(before);
  });
});

describe("policy slots (current and LKG)", () => {
  let stateRoot: string;
  beforeEach(async () => {
    stateRoot = join(await mkdtemp(join(tmpdir(), "slots-")), "state");
  });

  it("rotates the old current into LKG on every new load", async () => {
    const a = await buildBundle(await policyDir({ "a.cedar": 'permit(principal, action == Action::"tool:tool.echo", resource);' }), { name: "a", version: "1.0.0", createdAt: new Date(0) });
    const b = await buildBundle(await policyDir({ "b.cedar": "permit(principal, action, resource);" }), { name: "b", version: "2.0.0", createdAt: new Date(0) });
    await loadPolicy(stateRoot, a.bytes);
    await loadPolicy(stateRoot, b.bytes);
    const s = await readNodeState(stateRoot);
    expect(s.current?.digest).toBe(b.digest);
    expect(s.lkg?.digest).toBe(a.digest);
  });

  describe("when a broken bundle is loaded", () => {
    it("leaves current and LKG exactly as they were for a policy that does not compile", async () => {
      const a = await buildBundle(await policyDir({ "a.cedar": "permit(principal, action, resource);" }), { name: "a", version: "1.0.0", createdAt: new Date(0) });
      const b = await buildBundle(await policyDir({ "b.cedar": "forbid(principal, action, resource);" }), { name: "b", version: "1.0.1", createdAt: new Date(0) });
      await loadPolicy(stateRoot, a.bytes);
      await loadPolicy(stateRoot, b.bytes);
      const before = await readFile(policyPaths(stateRoot).state, "utf8");
      const broken = uncompiledBundle({ "bad.cedar": "permit(principal, action, resource" }, { name: "broken", version: "3.0.0" });
      expect(await codeOf(loadPolicy(stateRoot, broken.bytes))).toBe("POLICY_COMPILE_FAILED/1");
      expect(await readFile(policyPaths(stateRoot).state, "utf8")).toBe(before);
    });

    it("leaves them as they were for a tampered archive (BUNDLE_DIGEST_MISMATCH is exit 4)", async () => {
      const a = await buildBundle(await policyDir({ "a.cedar": "permit(principal, action, resource);" }), { name: "a", version: "1.0.0", createdAt: new Date(0) });
      await loadPolicy(stateRoot, a.bytes);
      const before = await readFile(policyPaths(stateRoot).state, "utf8");
      const garbage = Buffer.from(a.bytes);
      garbage[garbage.length - 20] = (garbage[garbage.length - 20] ?? 0) ^ 0xff;
      const code = await codeOf(loadPolicy(stateRoot, garbage));
      expect(code).toMatch(/^BUNDLE_/);
      expect(await readFile(policyPaths(stateRoot).state, "utf8")).toBe(before);
    });
  });

  it("a running LivePolicy picks up a new current without restart, and keeps its policy if the new one is altered at rest", async () => {
    const a = await buildBundle(await policyDir({ "a.cedar": "permit(principal, action, resource);" }), { name: "a", version: "1.0.0", createdAt: new Date(0) });
    const b = await buildBundle(await policyDir({ "b.cedar": "forbid(principal, action, resource);" }), { name: "b", version: "1.0.1", createdAt: new Date(0) });
    const c = await buildBundle(await policyDir({ "c.cedar": "permit(principal, action, resource);" }), { name: "c", version: "1.0.2", createdAt: new Date(0) });
    await loadPolicy(stateRoot, a.bytes);
    const live = new LivePolicy(stateRoot, { pollMs: 20 });
    await live.start();
    try {
      expect(live.current()?.bundle.manifest.name).toBe("a");
      await loadPolicy(stateRoot, b.bytes);
      // The poll timer alone must pick it up: no explicit refresh, no restart.
      const deadline = Date.now() + 5000;
      while (live.current()?.bundle.manifest.name !== "b" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(live.current()?.bundle.manifest.name).toBe("b");
    } finally {
      live.stop();
    }
    // A second runtime without its timer, so the alteration lands before it looks.
    const manual = new LivePolicy(stateRoot, { pollMs: 3_600_000 });
    await manual.start();
    try {
      await loadPolicy(stateRoot, c.bytes);
      await writeFile(bundlePath(stateRoot, c.digest), "altered at rest");
      await manual.refresh();
      expect(manual.current()?.bundle.manifest.name).toBe("b");
    } finally {
      manual.stop();
    }
  });

  it("starts from LKG when current fails to verify, and with no policy at all when both fail", async () => {
    const a = await buildBundle(await policyDir({ "a.cedar": "permit(principal, action, resource);" }), { name: "a", version: "1.0.0", createdAt: new Date(0) });
    const b = await buildBundle(await policyDir({ "b.cedar": "forbid(principal, action, resource);" }), { name: "b", version: "1.0.1", createdAt: new Date(0) });
    await loadPolicy(stateRoot, a.bytes);
    await loadPolicy(stateRoot, b.bytes);
    await writeFile(bundlePath(stateRoot, b.digest), "altered");
    const live = new LivePolicy(stateRoot);
    await live.start();
    expect(live.current()?.bundle.manifest.name).toBe("a");
    live.stop();
    await writeFile(bundlePath(stateRoot, a.digest), "altered too");
    const live2 = new LivePolicy(stateRoot);
    await live2.start();
    expect(live2.current()).toBeUndefined();
    live2.stop();
  });
});
