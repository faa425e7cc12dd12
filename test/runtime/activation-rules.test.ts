/**
 * The node's rules for release statements (src/node release-rules.ts, trust.ts,
 * activation.ts), driven with statements made by signStatement and committed
 * through commitActivation, as `runtime activate` commits them.
 */
import { describe, expect, it, beforeEach, beforeAll } from "vitest";
import { mkdir, mkdtemp, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { commitActivation, readNodeState, readTrustRoot, setTrustRoot, stateRootPaths, MAX_EQUIVOCATIONS } from "../../src/node/index.js";
import { buildBundle } from "../../src/policy/index.js";
import { openStatement, signStatement } from "../../src/supplychain/index.js";
import type { ReleasePredicate, ReleaseStatement } from "../../src/supplychain/index.js";
import { keyIdOf } from "../../src/sign/index.js";
import { AutonomyError } from "../../src/lib/index.js";
import type { Clock } from "../../src/lib/index.js";
import { policyDir, testKeys } from "../helpers/release.js";
import type { TestKeys } from "../helpers/release.js";
import { codeOf } from "../helpers/caught.js";

const REPO = "registry.example/team/agent";
const DAY = 24 * 3600 * 1000;
const T0 = Date.parse("2026-12-01T00:00:00Z");

interface Bundle {
  bytes: Buffer;
  digest: string;
  name: string;
}

let permissive: Bundle;
let strict: Bundle;
beforeAll(async () => {
  const p = await buildBundle(await policyDir({ "p.cedar": "permit(principal, action, resource);" }), { name: "permissive", version: "1.0.0", createdAt: new Date(0) });
  const s = await buildBundle(await policyDir({ "s.cedar": 'permit(principal, action == Action::"tool:tool.echo", resource);' }), { name: "strict", version: "2.0.0", createdAt: new Date(0) });
  permissive = { bytes: p.bytes, digest: p.digest, name: "permissive" };
  strict = { bytes: s.bytes, digest: s.digest, name: "strict" };
});

const sha = (s: string): string => `sha256:${createHash("sha256").update(s).digest("hex")}`;

interface Spec {
  sequence: number;
  bundle: Bundle;
  image?: string;
  issuedAt?: number;
  expiresAt?: number;
  channel?: string;
  repository?: string;
  signers?: TestKeys[];
}

describe("node rules for release statements", () => {
  let stateRoot: string;
  let keys: TestKeys;
  let nowMs: number;
  const clock: Clock = { now: () => nowMs };

  /** A statement signed by the release key(s), opened (verified) as `runtime activate` gets it. */
  const statement = (s: Spec): ReleaseStatement => {
    const signers = s.signers ?? [keys];
    const predicate: ReleasePredicate = {
      sequence: s.sequence, channel: s.channel ?? "stable", repository: s.repository ?? REPO,
      image: { digest: s.image ?? sha("image A"), mediaType: "application/vnd.oci.image.manifest.v1+json" },
      lock: { digest: sha(`lock ${s.sequence}`), size: 100, behavioral_fingerprint: `blake3:${"c".repeat(64)}` },
      policy_bundle: { digest: s.bundle.digest, size: s.bundle.bytes.length, name: s.bundle.name, version: "1.0.0" },
      issued_at: new Date(s.issuedAt ?? nowMs).toISOString(), expires_at: new Date(s.expiresAt ?? (s.issuedAt ?? nowMs) + 30 * DAY).toISOString(),
    };
    const signed = signStatement(predicate, signers.map((k) => k.privateKey));
    return openStatement(signed.envelope, signers.map((k) => ({ keyId: keyIdOf(k.publicKey), key: k.publicKey })), 1);
  };
  const activate = (s: ReleaseStatement, bundle: Bundle) => commitActivation(stateRoot, bundle.bytes, { ref: `${REPO}@${s.predicate.image.digest}`, statement: s }, { clock });

  beforeEach(async () => {
    stateRoot = join(await mkdtemp(join(tmpdir(), "rules-")), "state");
    keys = testKeys();
    nowMs = T0;
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: REPO, clock });
  });

  it("accepts a higher sequence and commits the floor (sequence, statement, issued_at) with the activation", async () => {
    const s1 = statement({ sequence: 1, bundle: permissive });
    const r = await activate(s1, permissive);
    expect(r.changed).toBe(true);
    const state = await readNodeState(stateRoot);
    expect(state.activation).toMatchObject({ statement_digest: s1.digest, sequence: 1, channel: "stable", repository: REPO, policy_digest: permissive.digest, image_digest: s1.predicate.image.digest });
    expect(state.highest_sequence).toBe(1);
    expect(state.highest_statement_digest).toBe(s1.digest);
    expect(state.newest_issued_at).toBe(s1.predicate.issued_at);
    expect(state.current?.digest).toBe(permissive.digest);
  });

  it("treats the byte-identical statement offered again as a no-op (already active)", async () => {
    const s1 = statement({ sequence: 1, bundle: permissive });
    await activate(s1, permissive);
    const before = await readNodeState(stateRoot);
    nowMs += DAY;
    const again = await activate(s1, permissive);
    expect(again.changed).toBe(false);
    const after = await readNodeState(stateRoot);
    expect(after.activation).toEqual(before.activation);
    expect(after.highest_statement_digest).toBe(before.highest_statement_digest);
  });

  it("attack 1 (node rules): a different statement at the active sequence is refused, reported with both digests and recorded", async () => {
    // Release 2 (strict) is active; the same image with the permissive bundle, validly signed, appears at sequence 2.
    await activate(statement({ sequence: 1, bundle: permissive }), permissive);
    const s2 = statement({ sequence: 2, bundle: strict });
    await activate(s2, strict);
    const before = await readNodeState(stateRoot);
    const mixed = statement({ sequence: 2, bundle: permissive });
    let err: unknown;
    await activate(mixed, permissive).catch((e: unknown) => (err = e));
    expect(err).toBeInstanceOf(AutonomyError);
    const e = err as AutonomyError;
    expect(`${e.code}/${e.exitCode}`).toBe("ACTIVATION_EQUIVOCATION/4");
    expect(e.details).toMatchObject({ sequence: 2, recorded: s2.digest, offered: mixed.digest });
    const after = await readNodeState(stateRoot);
    expect(after.activation).toEqual(before.activation);
    expect(after.current).toEqual(before.current);
    expect(after.equivocations).toEqual([{ sequence: 2, recorded: s2.digest, offered: mixed.digest, at: new Date(nowMs).toISOString() }]);
  });

  it("keeps the equivocation list bounded", async () => {
    await activate(statement({ sequence: 1, bundle: strict }), strict);
    for (let i = 0; i < MAX_EQUIVOCATIONS + 3; i++) {
      nowMs += 1000;
      expect(await codeOf(activate(statement({ sequence: 1, bundle: strict, image: sha(`other ${i}`) }), strict))).toBe("ACTIVATION_EQUIVOCATION/4");
    }
    const s = await readNodeState(stateRoot);
    expect(s.equivocations).toHaveLength(MAX_EQUIVOCATIONS);
    expect(s.equivocations.at(-1)?.at).toBe(new Date(nowMs).toISOString());
  });

  it("attack 2 (node rules): a statement at sequence 1 re-offered after sequence 3 is refused, for ever, although it was once active", async () => {
    const s1 = statement({ sequence: 1, bundle: permissive, expiresAt: T0 + 3650 * DAY });
    await activate(s1, permissive);
    nowMs += DAY;
    await activate(statement({ sequence: 3, bundle: strict }), strict);
    for (const later of [0, 400 * DAY, 3000 * DAY]) {
      nowMs = T0 + DAY + later;
      expect(await codeOf(activate(s1, permissive))).toBe("ACTIVATION_ROLLBACK_REFUSED/4");
    }
    expect((await readNodeState(stateRoot)).activation?.sequence).toBe(3);
  });

  it("refuses an expired statement (expires_at at or before the node clock)", async () => {
    const s1 = statement({ sequence: 1, bundle: permissive, issuedAt: T0 - 2 * DAY, expiresAt: T0 });
    expect(await codeOf(activate(s1, permissive))).toBe("ACTIVATION_EXPIRED/4");
    expect((await readNodeState(stateRoot)).generation).toBe(1);
  });

  it("refuses a higher sequence issued before the newest statement accepted (an old statement re-signed with a higher number)", async () => {
    await activate(statement({ sequence: 2, bundle: strict, issuedAt: T0 }), strict);
    expect(await codeOf(activate(statement({ sequence: 3, bundle: permissive, issuedAt: T0 - DAY }), permissive))).toBe("ACTIVATION_ROLLBACK_REFUSED/4");
    expect(await codeOf(activate(statement({ sequence: 3, bundle: permissive, issuedAt: T0 }), permissive))).toBe("NO_ERROR");
  });

  it("refuses a statement for another channel or repository (ACTIVATION_UNTRUSTED)", async () => {
    expect(await codeOf(activate(statement({ sequence: 1, bundle: permissive, channel: "staging" }), permissive))).toBe("ACTIVATION_UNTRUSTED/4");
    expect(await codeOf(activate(statement({ sequence: 1, bundle: permissive, repository: "registry.example/team/other" }), permissive))).toBe("ACTIVATION_UNTRUSTED/4");
  });

  it("requires the threshold of trusted keys, counting each key once", async () => {
    const second = testKeys();
    await setTrustRoot(stateRoot, { keys: [keys.publicPem, second.publicPem], threshold: 2, clock });
    expect(await codeOf(activate(statement({ sequence: 1, bundle: permissive }), permissive))).toBe("ACTIVATION_UNTRUSTED/4");
    expect(await codeOf(activate(statement({ sequence: 1, bundle: permissive, signers: [keys, keys] }), permissive))).toBe("ACTIVATION_UNTRUSTED/4");
    expect(await codeOf(activate(statement({ sequence: 1, bundle: permissive, signers: [keys, second] }), permissive))).toBe("NO_ERROR");
  });

  it("activates exactly the bundle the statement names", async () => {
    expect(await codeOf(activate(statement({ sequence: 1, bundle: strict }), permissive))).toBe("BUNDLE_DIGEST_MISMATCH/4");
  });

  it("fails closed without a trust root", async () => {
    stateRoot = join(await mkdtemp(join(tmpdir(), "rules-")), "state");
    expect(await codeOf(activate(statement({ sequence: 1, bundle: permissive }), permissive))).toBe("TRUST_NOT_CONFIGURED/1");
  });

  describe("the trust root", () => {
    it("is a node-owned file, 0644, that round-trips", async () => {
      const t = await readTrustRoot(stateRoot);
      expect(t?.keys.map((k) => k.keyId)).toEqual([keyIdOf(keys.publicKey)]);
      expect(t).toMatchObject({ threshold: 1, channel: "stable", repository: REPO });
      expect((await stat(stateRootPaths(stateRoot).trust)).mode & 0o777).toBe(0o644);
    });

    it("refuses a hand-edited key id and a threshold above the key count", async () => {
      const path = stateRootPaths(stateRoot).trust;
      const doc = JSON.parse(await readFile(path, "utf8")) as { keys: { key_id: string; public_key: string }[] };
      doc.keys = doc.keys.map((k) => ({ ...k, key_id: "0".repeat(64) }));
      await writeFile(path, JSON.stringify(doc));
      expect(await codeOf(readTrustRoot(stateRoot))).toBe("TRUST_INVALID/1");
      expect(await codeOf(setTrustRoot(stateRoot, { keys: [keys.publicPem], threshold: 2, repository: REPO, clock }))).toBe("TRUST_INVALID/1");
    });

    it("fast-forward recovery: a rotation to new keys resets the floor inflated with the old key, and records it", async () => {
      await activate(statement({ sequence: Number.MAX_SAFE_INTEGER, bundle: permissive }), permissive);
      const fresh = testKeys();
      const r = await setTrustRoot(stateRoot, { keys: [fresh.publicPem], clock });
      expect(r.rotation).toMatchObject({ floor_reset: true, previous_sequence: Number.MAX_SAFE_INTEGER, from: [keyIdOf(keys.publicKey)], to: [keyIdOf(fresh.publicKey)] });
      expect(r.state.highest_sequence).toBe(0);
      expect(r.state.key_rotations).toHaveLength(1);
      nowMs += DAY;
      expect(await codeOf(activate(statement({ sequence: 1, bundle: strict, signers: [fresh] }), strict))).toBe("NO_ERROR");
      // The old key's statements are no longer trusted at all.
      expect(await codeOf(activate(statement({ sequence: 5, bundle: permissive }), permissive))).toBe("ACTIVATION_UNTRUSTED/4");
    });

    it("keeps the floor when the new key set still holds an old key, unless the operator resets it", async () => {
      const s1 = statement({ sequence: 1, bundle: permissive });
      await activate(s1, permissive);
      nowMs += DAY;
      await activate(statement({ sequence: 3, bundle: strict }), strict);
      const added = testKeys();
      const kept = await setTrustRoot(stateRoot, { keys: [keys.publicPem, added.publicPem], clock });
      expect(kept.rotation?.floor_reset).toBe(false);
      expect(kept.state.highest_sequence).toBe(3);
      expect(await codeOf(activate(s1, permissive))).toBe("ACTIVATION_ROLLBACK_REFUSED/4");
      const reset = await setTrustRoot(stateRoot, { resetFloor: true, clock });
      expect(reset.rotation?.floor_reset).toBe(true);
      expect(reset.state.highest_sequence).toBe(0);
    });

    it("careless operator: `trust set --key C` over a 2-of-2 root never lowers the threshold quietly — refused (usage) unless --threshold is given", async () => {
      const second = testKeys();
      await setTrustRoot(stateRoot, { keys: [keys.publicPem, second.publicPem], threshold: 2, clock });
      const c = testKeys();
      expect(await codeOf(setTrustRoot(stateRoot, { keys: [c.publicPem], clock }))).toBe("USAGE/2");
      expect((await readTrustRoot(stateRoot))?.threshold).toBe(2);
      const explicit = await setTrustRoot(stateRoot, { keys: [c.publicPem], threshold: 1, clock });
      expect(explicit.trust.threshold).toBe(1);
      // Keeping enough keys keeps the threshold as it was.
      const kept = await setTrustRoot(stateRoot, { keys: [c.publicPem, keys.publicPem], clock });
      expect(kept.trust.threshold).toBe(1);
    });

    it("attack key rotation back (A → B → A): trusting an old key set again keeps B's floor, so A's old statements stay refused", async () => {
      const s1 = statement({ sequence: 1, bundle: permissive });
      await activate(s1, permissive);
      nowMs += DAY;
      await activate(statement({ sequence: 3, bundle: strict }), strict);
      const b = testKeys();
      const toB = await setTrustRoot(stateRoot, { keys: [b.publicPem], clock });
      expect(toB.rotation?.floor_reset).toBe(true);
      nowMs += DAY;
      await activate(statement({ sequence: 5, bundle: strict, signers: [b] }), strict);
      // More (overlapping) rotations than the 16-entry history holds: A leaves the history, the node still remembers it.
      for (let i = 0; i < 17; i++) await setTrustRoot(stateRoot, { keys: [b.publicPem, testKeys().publicPem], clock });
      const history = (await readNodeState(stateRoot)).key_rotations;
      expect(history.some((r) => [...r.from, ...r.to].includes(keyIdOf(keys.publicKey)))).toBe(false);
      const backToA = await setTrustRoot(stateRoot, { keys: [keys.publicPem], clock });
      expect(backToA.rotation?.floor_reset).toBe(false);
      expect(backToA.state.highest_sequence).toBe(5);
      expect(await codeOf(activate(s1, permissive))).toBe("ACTIVATION_ROLLBACK_REFUSED/4");
      expect(backToA.state.trusted_key_ids_ever).toContain(keyIdOf(keys.publicKey));
    });

    it("attack key rotation back with no release in between (A → B → A): A's floor comes back, so A's old statements stay refused", async () => {
      const s1 = statement({ sequence: 1, bundle: permissive });
      await activate(s1, permissive);
      nowMs += DAY;
      const s3 = statement({ sequence: 3, bundle: strict });
      await activate(s3, strict);
      const b = testKeys();
      expect((await setTrustRoot(stateRoot, { keys: [b.publicPem], clock })).rotation?.floor_reset).toBe(true);
      const backToA = await setTrustRoot(stateRoot, { keys: [keys.publicPem], clock });
      expect(backToA.rotation?.floor_reset).toBe(false);
      expect(backToA.state).toMatchObject({ highest_sequence: 3, highest_statement_digest: s3.digest, newest_issued_at: s3.predicate.issued_at });
      expect(await codeOf(activate(s1, permissive))).toBe("ACTIVATION_ROLLBACK_REFUSED/4");
      expect(await codeOf(activate(s3, strict))).toBe("NO_ERROR");
      // Durable: the retired floor is in state.json, read back by a later process.
      expect((await readNodeState(stateRoot)).retired_floors).toEqual([expect.objectContaining({ key_ids: [keyIdOf(keys.publicKey)], highest_sequence: 3 })]);
    });

    it("a state written before retired floors were kept: trusting an old key again keeps the current floor (fails closed, never lowers)", async () => {
      await activate(statement({ sequence: 4, bundle: strict }), strict);
      const b = testKeys();
      await setTrustRoot(stateRoot, { keys: [b.publicPem], clock });
      nowMs += DAY;
      await activate(statement({ sequence: 2, bundle: strict, signers: [b] }), strict);
      const path = stateRootPaths(stateRoot).state;
      const doc = JSON.parse(await readFile(path, "utf8")) as Record<string, unknown>;
      delete doc.retired_floors;
      await writeFile(path, JSON.stringify(doc));
      const back = await setTrustRoot(stateRoot, { keys: [keys.publicPem, b.publicPem], clock });
      expect(back.state.highest_sequence).toBe(2);
    });

    it("finishes a rotation interrupted between trust.json and the state (rerun resets the floor)", async () => {
      await activate(statement({ sequence: 7, bundle: permissive }), permissive);
      const fresh = testKeys();
      // As if killed after writing trust.json: the file names the new key, the state still the old one.
      const path = stateRootPaths(stateRoot).trust;
      const doc = JSON.parse(await readFile(path, "utf8")) as { keys: unknown[] };
      doc.keys = [{ key_id: keyIdOf(fresh.publicKey), public_key: fresh.publicPem }];
      await writeFile(path, JSON.stringify(doc));
      expect((await readNodeState(stateRoot)).highest_sequence).toBe(7);
      const r = await setTrustRoot(stateRoot, { keys: [fresh.publicPem], clock });
      expect(r.rotation?.floor_reset).toBe(true);
      expect(r.state.highest_sequence).toBe(0);
    });
  });

  describe("a version-1 state.json (before release statements)", () => {
    const image = sha("legacy image");
    const v1State = (): Record<string, unknown> => ({
      version: 1, generation: 4,
      activation: { ref: `${REPO}@${image}`, artifact_digest: image, lock_fingerprint: `blake3:${"d".repeat(64)}`, policy_digest: permissive.digest, sequence: 3, rollback: false, signed_at: "2026-11-01T00:00:00Z", activated_at: "2026-11-01T00:00:01Z" },
      highest_sequence: 3, highest_artifact_digest: image,
    });
    beforeEach(async () => {
      await mkdir(stateRootPaths(stateRoot).policy, { recursive: true });
      await writeFile(stateRootPaths(stateRoot).state, JSON.stringify(v1State()));
    });

    it("loads, migrated explicitly: floor kept, old record kept for the operator", async () => {
      const s = await readNodeState(stateRoot);
      expect(s).toMatchObject({ version: 2, generation: 4, highest_sequence: 3, legacy_highest_artifact_digest: image, equivocations: [], key_rotations: [] });
      expect(s.legacy_activation?.artifact_digest).toBe(image);
      expect(s.activation).toBeUndefined();
    });

    it("refuses a lower sequence and another image at the recorded sequence; accepts the same release re-published as a statement", async () => {
      expect(await codeOf(activate(statement({ sequence: 2, bundle: strict }), strict))).toBe("ACTIVATION_ROLLBACK_REFUSED/4");
      expect(await codeOf(activate(statement({ sequence: 3, bundle: strict, image: sha("another image") }), strict))).toBe("ACTIVATION_EQUIVOCATION/4");
      const same = statement({ sequence: 3, bundle: permissive, image });
      expect(await codeOf(activate(same, permissive))).toBe("NO_ERROR");
      const s = await readNodeState(stateRoot);
      expect(s.highest_statement_digest).toBe(same.digest);
      expect(s.legacy_highest_artifact_digest).toBeUndefined();
      expect(JSON.parse(await readFile(stateRootPaths(stateRoot).state, "utf8"))).toMatchObject({ version: 2 });
    });
  });
});
