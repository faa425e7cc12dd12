// Library-level tamper tests for verifyRelease against a real OCI image layout
// (LayoutRepository in a temp dir): every way a release can be broken must end in
// a VerificationError (or a LockError / OciError) with exit code 4, never a pass.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { cp, mkdtemp, readFile, readdir, rm, stat, truncate, writeFile } from "node:fs/promises";
import { createPrivateKey, createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  LayoutRepository, MediaTypes, attachFile, encodeManifest, listReferrers, parseReference, publishReferrer, pushArtifact,
} from "../oci/index.js";
import type { ImageManifest, OciRepository, PushedArtifact, Reference } from "../oci/index.js";
import { OciError } from "../oci/index.js";
import { VerificationError, generateKeyPair } from "../sign/index.js";
import { LockError, createLock, serializeLock } from "../lock/index.js";
import type { ActivationLock } from "../lock/index.js";
import { AutonomyError, sha256Digest } from "../lib/index.js";
import { signRelease, signSubject, verifyRelease } from "./index.js";
import type { VerifyReleaseOptions } from "./index.js";

const DAY_MS = 24 * 3600 * 1000;
/** A fixed clock: signing and verification never read the wall clock in these tests. */
const NOW = new Date("2025-06-01T12:00:00Z");
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

interface Keys {
  priv: KeyObject;
  pub: KeyObject;
}

function keyPair(): Keys {
  const p = generateKeyPair();
  return { priv: createPrivateKey(p.privatePem), pub: createPublicKey(p.publicPem) };
}

/** Runs `p` and returns what it threw; fails the test when it resolves. */
async function thrown(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected verification to fail, but it passed");
}

/** Asserts a VerificationError with `code` and exit 4, and returns it for detail checks. */
async function expectVerification(p: Promise<unknown>, code: string): Promise<VerificationError> {
  const e = await thrown(p);
  expect(e).toBeInstanceOf(VerificationError);
  const v = e as VerificationError;
  expect({ code: v.code, exitCode: v.exitCode }).toEqual({ code, exitCode: 4 });
  expect(v.hint.length).toBeGreaterThan(0);
  return v;
}

/** The path of a blob inside a layout directory. */
const blobPath = (dir: string, digest: string): string => join(dir, "blobs", "sha256", digest.slice("sha256:".length));

describe("verifyRelease on an OCI image layout", () => {
  let tmp: string;
  let dir: string;
  let repo: LayoutRepository;
  let ref: Reference;
  let trusted: Keys;
  let image: PushedArtifact;
  let bundle: Uint8Array;
  let lock: ActivationLock;
  let lockAttachment: PushedArtifact;
  let bundleAttachment: PushedArtifact;

  /** Trust options for the good release; override what a case needs. */
  const trust = (over: Partial<VerifyReleaseOptions> = {}): VerifyReleaseOptions => ({
    key: trusted.pub, maxAgeMs: 365 * DAY_MS, now: NOW, requireLock: true, requirePolicy: true, tag: "v1", ...over,
  });

  /** Pushes another (unsigned, unattached) artifact under `tag`. */
  const pushOther = (tag: string, content = `other agent ${tag}`): Promise<PushedArtifact> =>
    pushArtifact(repo, [{ name: "agent.py", data: enc(content) }], { artifactType: "application/vnd.autonomyops.artifact.v1", tag });

  const refFor = (tag: string): Reference => parseReference(`oci:${dir}:${tag}`);

  /** Attaches a lock and/or bundle to `subject` and signs the lot with `key`. */
  async function release(subject: PushedArtifact, tag: string, parts: { lock?: Uint8Array; bundle?: Uint8Array; key?: KeyObject; now?: Date }): Promise<void> {
    if (parts.lock) await attachFile(repo, subject.descriptor, { name: "autonomy.lock.json", data: parts.lock }, { artifactType: MediaTypes.lock, subjectTag: tag });
    if (parts.bundle) await attachFile(repo, subject.descriptor, { name: "bundle.tar.gz", data: parts.bundle }, { artifactType: MediaTypes.policyBundle, subjectTag: tag });
    await signRelease(repo, refFor(tag), tag, { key: parts.key ?? trusted.priv, now: parts.now ?? NOW, attachments: true });
  }

  /** The one signature manifest that names `subject`, by the cosign signature artifactType. */
  async function signatureManifestOf(subject: string): Promise<{ digest: string; manifest: ImageManifest }> {
    const sigs = await listReferrers(repo, subject, MediaTypes.cosignSignatureArtifact);
    expect(sigs).toHaveLength(1);
    const digest = sigs[0]!.digest;
    const fetched = await repo.getManifest(digest);
    return { digest, manifest: JSON.parse(new TextDecoder().decode(fetched.bytes)) as ImageManifest };
  }

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), "verify-release-"));
    dir = join(tmp, "oci");
    repo = new LayoutRepository(dir);
    ref = refFor("v1");
    trusted = keyPair();
    image = await pushArtifact(repo, [{ name: "agent.py", data: enc("print('agent v1')\n") }], { artifactType: "application/vnd.autonomyops.artifact.v1", tag: "v1" });
    bundle = enc("pretend this is bundle.tar.gz: permit(principal, action == Action::\"tool:echo\", resource);");
    lock = await createLock({ agentImageRef: `oci:${dir}:v1`, agentDigest: image.digest, policyBundleRef: "policy:v1", policyBundleDigest: sha256Digest(bundle) });
    lockAttachment = await attachFile(repo, image.descriptor, { name: "autonomy.lock.json", data: enc(serializeLock(lock)) }, { artifactType: MediaTypes.lock, subjectTag: "v1" });
    bundleAttachment = await attachFile(repo, image.descriptor, { name: "bundle.tar.gz", data: bundle }, { artifactType: MediaTypes.policyBundle, subjectTag: "v1" });
    const signed = await signRelease(repo, ref, "v1", { key: trusted.priv, now: NOW, attachments: true });
    expect(signed.map((s) => s.what)).toEqual(["artifact", "lock", "policy bundle"]);
  });

  afterEach(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("good release verifies with requireLock and requirePolicy; every step ok", async () => {
    const report = await verifyRelease(repo, "v1", trust());
    expect(report.artifact.digest).toBe(image.digest);
    expect(report.steps.map((s) => s.step)).toEqual(["artifact-signature", "artifact-digests", "lock", "policy"]);
    expect(report.steps.every((s) => s.ok)).toBe(true);
    expect(report.lock?.lock.behavioral_fingerprint).toBe(lock.behavioral_fingerprint);
    expect(report.lock?.manifest).toBe(lockAttachment.digest);
    expect(report.policy?.manifest).toBe(bundleAttachment.digest);
    expect(report.policy?.blob).toBe(sha256Digest(bundle));
    expect(report.artifact.signature.signedAt).toBe("2025-06-01T12:00:00Z");
    // By digest too, and without the tag (referrers only).
    const byDigest = await verifyRelease(repo, image.digest, trust({ tag: undefined }));
    expect(byDigest.lock?.blob).toBe(report.lock?.blob);
  });

  it("missing signature: an artifact pushed but never signed → SIGNATURE_MISSING", async () => {
    const unsigned = await pushOther("unsigned");
    const e = await expectVerification(verifyRelease(repo, "unsigned", trust({ tag: "unsigned", requireLock: false, requirePolicy: false })), "SIGNATURE_MISSING");
    expect(e.details).toMatchObject({ digest: unsigned.digest });
    expect(e.message).toContain(unsigned.digest);
  });

  it("wrong public key → SIGNATURE_INVALID", async () => {
    const other = keyPair();
    const e = await expectVerification(verifyRelease(repo, "v1", trust({ key: other.pub })), "SIGNATURE_INVALID");
    expect(e.details).toMatchObject({ digest: image.digest });
  });

  it("a signature over another digest re-published as a referrer of artifact B → SIGNATURE_DIGEST_MISMATCH", async () => {
    const b = await pushOther("b");
    const { manifest } = await signatureManifestOf(image.digest);
    // Payload layer (and its signature annotation) unchanged: only the subject now names B.
    const moved: ImageManifest = { ...manifest, subject: { mediaType: b.descriptor.mediaType, digest: b.digest, size: b.descriptor.size } };
    const { bytes } = encodeManifest(moved);
    await publishReferrer(repo, bytes, moved.mediaType, b.digest);
    const e = await expectVerification(verifyRelease(repo, "b", trust({ tag: "b", requireLock: false, requirePolicy: false })), "SIGNATURE_DIGEST_MISMATCH");
    expect(e.details).toMatchObject({ expected: b.digest, actual: image.digest });
  });

  it("a truncated layer blob → BLOB_DIGEST_MISMATCH naming the blob", async () => {
    const layer = image.manifest.layers[0]!;
    await truncate(blobPath(dir, layer.digest), 3);
    const e = await expectVerification(verifyRelease(repo, "v1", trust()), "BLOB_DIGEST_MISMATCH");
    expect(e.message).toContain(layer.digest);
    // The machine-readable details must still say which blob was bad (not only byte counts).
    expect(Object.values(e.details)).toContain(layer.digest);
  });

  it("a same-size altered layer blob → BLOB_DIGEST_MISMATCH with expected and actual digests", async () => {
    const layer = image.manifest.layers[0]!;
    const path = blobPath(dir, layer.digest);
    const data = await readFile(path);
    data[0] = data[0]! ^ 0xff;
    await writeFile(path, data);
    const e = await expectVerification(verifyRelease(repo, "v1", trust()), "BLOB_DIGEST_MISMATCH");
    expect(e.details).toMatchObject({ expected: layer.digest, actual: sha256Digest(data) });
  });

  it("a tampered payload byte in the signature blob on disk → the read fails digest verification (OCI_DIGEST_MISMATCH, exit 4)", async () => {
    const { manifest } = await signatureManifestOf(image.digest);
    const payload = manifest.layers[0]!;
    const path = blobPath(dir, payload.digest);
    const data = await readFile(path);
    // Same size, one byte changed inside the signed JSON (the digest inside the payload).
    const i = data.indexOf("sha256:") + 10;
    data[i] = data[i] === 0x61 ? 0x62 : 0x61;
    await writeFile(path, data);
    const e = await thrown(verifyRelease(repo, "v1", trust()));
    expect(e).toBeInstanceOf(OciError);
    const o = e as OciError;
    expect({ code: o.code, exitCode: o.exitCode }).toEqual({ code: "OCI_DIGEST_MISMATCH", exitCode: 4 });
    expect(o.details).toMatchObject({ expected: payload.digest, actual: sha256Digest(data) });
  });

  it("a tampered payload re-published with consistent digests (new blob, new manifest) → SIGNATURE_INVALID", async () => {
    const b = await pushOther("b");
    const { manifest } = await signatureManifestOf(image.digest);
    const original = await repo.getBlob(manifest.layers[0]!.digest);
    // The attacker edits the signed payload to name B and stores it properly; the signature no longer matches it.
    const payload = enc(new TextDecoder().decode(original).replace(image.digest, b.digest));
    const payloadDigest = await repo.putBlob(payload);
    const forged: ImageManifest = {
      ...manifest,
      layers: [{ ...manifest.layers[0]!, digest: payloadDigest, size: payload.byteLength }],
      subject: { mediaType: b.descriptor.mediaType, digest: b.digest, size: b.descriptor.size },
    };
    await publishReferrer(repo, encodeManifest(forged).bytes, forged.mediaType, b.digest);
    const e = await expectVerification(verifyRelease(repo, "b", trust({ tag: "b", requireLock: false, requirePolicy: false })), "SIGNATURE_INVALID");
    expect(e.details).toMatchObject({ digest: b.digest });
  });

  it("stale signature: signed 400 days ago, verified with maxAge 365 days → SIGNATURE_STALE", async () => {
    const old = await pushOther("old");
    await release(old, "old", { now: new Date(NOW.getTime() - 400 * DAY_MS) });
    const e = await expectVerification(verifyRelease(repo, "old", trust({ tag: "old", requireLock: false, requirePolicy: false })), "SIGNATURE_STALE");
    expect(e.details).toMatchObject({ maxAgeMs: 365 * DAY_MS, ageMs: 400 * DAY_MS, now: NOW.toISOString() });
  });

  it("a signature dated in the future beyond the clock skew → SIGNATURE_TIME_INVALID", async () => {
    const future = await pushOther("future");
    await release(future, "future", { now: new Date(NOW.getTime() + 3600_000) });
    const e = await expectVerification(verifyRelease(repo, "future", trust({ tag: "future", requireLock: false, requirePolicy: false })), "SIGNATURE_TIME_INVALID");
    expect(e.details).toMatchObject({ signedAt: "2025-06-01T13:00:00.000Z", now: NOW.toISOString() });
  });

  it("a signature dated within the clock skew (one minute ahead) is accepted", async () => {
    const soon = await pushOther("soon");
    await release(soon, "soon", { now: new Date(NOW.getTime() + 60_000) });
    await expect(verifyRelease(repo, "soon", trust({ tag: "soon", requireLock: false, requirePolicy: false }))).resolves.toBeDefined();
  });

  it("the lock pins another artifact digest (signed with the trusted key) → ARTIFACT_DIGEST_MISMATCH", async () => {
    const c = await pushOther("c");
    const wrong = await createLock({ agentImageRef: "elsewhere/agent:1", agentDigest: image.digest, policyBundleRef: "policy:v1", policyBundleDigest: sha256Digest(bundle) });
    await release(c, "c", { lock: enc(serializeLock(wrong)), bundle });
    const e = await expectVerification(verifyRelease(repo, "c", trust({ tag: "c" })), "ARTIFACT_DIGEST_MISMATCH");
    expect(e.details).toMatchObject({ expected: image.digest, actual: c.digest });
  });

  it("the lock's fingerprint field edited (signed) → LOCK_FINGERPRINT_MISMATCH, a LockError with exit 4", async () => {
    const c = await pushOther("c");
    const good = await createLock({ agentImageRef: "c", agentDigest: c.digest, policyBundleRef: "policy:v1", policyBundleDigest: sha256Digest(bundle) });
    const hex = good.behavioral_fingerprint.slice("blake3:".length);
    const forged = `blake3:${hex.slice(0, -1)}${hex.endsWith("0") ? "1" : "0"}`;
    await release(c, "c", { lock: enc(JSON.stringify({ ...good, behavioral_fingerprint: forged })), bundle });
    const e = await thrown(verifyRelease(repo, "c", trust({ tag: "c" })));
    expect(e).toBeInstanceOf(LockError);
    const l = e as LockError;
    expect({ code: l.code, exitCode: l.exitCode }).toEqual({ code: "LOCK_FINGERPRINT_MISMATCH", exitCode: 4 });
    expect(l.details).toEqual({ expected: forged, actual: good.behavioral_fingerprint });
  });

  it("a lock field edited after fingerprinting (signed) → LOCK_FINGERPRINT_MISMATCH", async () => {
    const c = await pushOther("c");
    const good = await createLock({ agentImageRef: "c", agentDigest: c.digest, policyBundleRef: "policy:v1", policyBundleDigest: sha256Digest(bundle) });
    await release(c, "c", { lock: enc(JSON.stringify({ ...good, policy_bundle: { ...good.policy_bundle, ref: "policy:evil" } })), bundle });
    const e = await thrown(verifyRelease(repo, "c", trust({ tag: "c" })));
    expect(e).toBeInstanceOf(LockError);
    expect({ code: (e as LockError).code, exitCode: (e as LockError).exitCode }).toEqual({ code: "LOCK_FINGERPRINT_MISMATCH", exitCode: 4 });
  });

  it("bundle digest differs from the lock's → POLICY_DIGEST_MISMATCH", async () => {
    const c = await pushOther("c");
    const cLock = await createLock({ agentImageRef: "c", agentDigest: c.digest, policyBundleRef: "policy:v1", policyBundleDigest: sha256Digest(bundle) });
    const other = enc("last month's bundle: permit(principal, action, resource);");
    await release(c, "c", { lock: enc(serializeLock(cLock)), bundle: other });
    const e = await expectVerification(verifyRelease(repo, "c", trust({ tag: "c" })), "POLICY_DIGEST_MISMATCH");
    expect(e.details).toMatchObject({ expected: sha256Digest(bundle), actual: sha256Digest(other) });
  });

  it("requireLock with nothing attached → LOCK_MISSING", async () => {
    const bare = await pushOther("bare");
    await release(bare, "bare", {});
    const e = await expectVerification(verifyRelease(repo, "bare", trust({ tag: "bare", requireLock: true, requirePolicy: false })), "LOCK_MISSING");
    expect(e.details).toMatchObject({ digest: bare.digest });
    // Without the requirement the same artifact verifies.
    const ok = await verifyRelease(repo, "bare", trust({ tag: "bare", requireLock: false, requirePolicy: false }));
    expect(ok.lock).toBeUndefined();
  });

  it("requirePolicy with nothing attached → POLICY_MISSING", async () => {
    const bare = await pushOther("bare");
    await release(bare, "bare", {});
    const e = await expectVerification(verifyRelease(repo, "bare", trust({ tag: "bare", requireLock: false, requirePolicy: true })), "POLICY_MISSING");
    expect(e.details).toMatchObject({ digest: bare.digest });
  });

  it("an attacker's extra bundle signed with THEIR key is ignored; the trusted bundle is used", async () => {
    const attacker = keyPair();
    const evil = enc("attacker bundle: permit(principal, action, resource);");
    // The attacker attaches a bundle and signs everything they can see with their own key.
    await release(image, "v1", { bundle: evil, key: attacker.priv });
    expect((await listReferrers(repo, image.digest, MediaTypes.policyBundle)).length).toBe(2);
    const report = await verifyRelease(repo, "v1", trust());
    expect(report.policy?.blob).toBe(sha256Digest(bundle));
    expect(report.policy?.manifest).toBe(bundleAttachment.digest);
    expect(report.steps.every((s) => s.ok)).toBe(true);
  });

  it("two different bundles both signed by the trusted key → ATTACHMENT_AMBIGUOUS", async () => {
    const second = enc("a second bundle, also signed by the release key");
    await release(image, "v1", { bundle: second });
    const e = await expectVerification(verifyRelease(repo, "v1", trust()), "ATTACHMENT_AMBIGUOUS");
    expect(e.details.candidates).toEqual(expect.arrayContaining([sha256Digest(bundle), sha256Digest(second)]));
  });

  it("a sidecar-tag-only lock whose manifest subject names another artifact is not accepted (ATTACHMENT_INVALID)", async () => {
    const e2 = await pushOther("e");
    await release(e2, "e", {});
    // A lock that pins e, signed by the trusted key, but whose manifest is a referrer of the v1 image,
    // published only under e's sidecar tag "e-lock".
    const eLock = await createLock({ agentImageRef: "e", agentDigest: e2.digest, policyBundleRef: "policy:v1", policyBundleDigest: sha256Digest(bundle) });
    const side = await pushArtifact(repo, [{ name: "autonomy.lock.json", data: enc(serializeLock(eLock)), mediaType: MediaTypes.lock }],
      { artifactType: MediaTypes.lock, subject: image.descriptor, tag: "e-lock" });
    await signSubject(repo, side.descriptor, { key: trusted.priv, dockerReference: `oci:${dir}`, signedAt: NOW });
    expect(await listReferrers(repo, e2.digest, MediaTypes.lock)).toEqual([]);
    const e = await expectVerification(verifyRelease(repo, "e", trust({ tag: "e", requirePolicy: false })), "ATTACHMENT_INVALID");
    expect(e.details).toMatchObject({ expected: e2.digest, actual: image.digest });
  });

  it("a sidecar-tag-only lock with no subject at all is not accepted (ATTACHMENT_INVALID)", async () => {
    const e2 = await pushOther("e");
    await release(e2, "e", {});
    const eLock = await createLock({ agentImageRef: "e", agentDigest: e2.digest, policyBundleRef: "policy:v1", policyBundleDigest: sha256Digest(bundle) });
    const side = await pushArtifact(repo, [{ name: "autonomy.lock.json", data: enc(serializeLock(eLock)), mediaType: MediaTypes.lock }],
      { artifactType: MediaTypes.lock, tag: "e-lock" });
    await signSubject(repo, side.descriptor, { key: trusted.priv, dockerReference: `oci:${dir}`, signedAt: NOW });
    const e = await expectVerification(verifyRelease(repo, "e", trust({ tag: "e", requirePolicy: false })), "ATTACHMENT_INVALID");
    expect(e.details).toMatchObject({ expected: e2.digest, actual: null });
  });

  it("an unsigned sidecar-tag-only lock is not accepted either", async () => {
    const e2 = await pushOther("e");
    await release(e2, "e", {});
    const eLock = await createLock({ agentImageRef: "e", agentDigest: e2.digest, policyBundleRef: "policy:v1", policyBundleDigest: sha256Digest(bundle) });
    await pushArtifact(repo, [{ name: "autonomy.lock.json", data: enc(serializeLock(eLock)), mediaType: MediaTypes.lock }],
      { artifactType: MediaTypes.lock, subject: image.descriptor, tag: "e-lock" });
    // The only candidate carries no signature at all, so that is the reason given.
    const e = await expectVerification(verifyRelease(repo, "e", trust({ tag: "e", requirePolicy: false })), "SIGNATURE_MISSING");
    expect(e.message).toContain("lock");
  });

  it("every blob file of a good release, one byte flipped, is refused with exit 4 (exhaustive over the files)", async () => {
    const names = (await readdir(join(dir, "blobs", "sha256"))).sort();
    // The shared empty config, layer, lock, bundle, 2 attachment manifests, 3 signature manifests, 3 payloads, the image manifest.
    expect(names).toHaveLength(13);
    for (const name of names) {
      const copyDir = join(tmp, `flip-${name}`);
      await cp(dir, copyDir, { recursive: true });
      const file = join(copyDir, "blobs", "sha256", name);
      const data = await readFile(file);
      data[data.length - 1] = data[data.length - 1]! ^ 0x01;
      await writeFile(file, data);
      const e = await thrown(verifyRelease(new LayoutRepository(copyDir), "v1", trust()));
      expect(e, name).toBeInstanceOf(AutonomyError);
      expect((e as AutonomyError).exitCode, `${(e as AutonomyError).code} for ${name}`).toBe(4);
      expect(["BLOB_DIGEST_MISMATCH", "OCI_DIGEST_MISMATCH"], name).toContain((e as AutonomyError).code);
    }
  });

  it("property: flipping one byte of any blob file in a good release makes verifyRelease throw an AutonomyError (exit 4)", async () => {
    const blobsDir = join(dir, "blobs", "sha256");
    const names = (await readdir(blobsDir)).sort();
    const sizes = await Promise.all(names.map(async (n) => (await stat(join(blobsDir, n))).size));
    expect(names.length).toBeGreaterThanOrEqual(10);
    // The harness itself: an untouched copy of the layout verifies.
    await cp(dir, join(tmp, "clean"), { recursive: true });
    await expect(verifyRelease(new LayoutRepository(join(tmp, "clean")), "v1", trust())).resolves.toBeDefined();
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), async (which, at, xor) => {
        const copyDir = join(tmp, `run-${run++}`);
        await cp(dir, copyDir, { recursive: true });
        try {
          const i = which % names.length;
          const file = join(copyDir, "blobs", "sha256", names[i]!);
          const data = await readFile(file);
          const offset = at % sizes[i]!;
          data[offset] = data[offset]! ^ xor;
          await writeFile(file, data);
          const copy: OciRepository = new LayoutRepository(copyDir);
          let error: unknown;
          try {
            await verifyRelease(copy, "v1", trust());
          } catch (e) {
            error = e;
          }
          if (error === undefined) throw new Error(`verification passed with blob ${names[i]} byte ${offset} ^ ${xor}`);
          if (!(error instanceof AutonomyError)) {
            throw new Error(`blob ${names[i]} byte ${offset} ^ ${xor}: verifyRelease threw a non-AutonomyError: ${error instanceof Error ? `${error.name}: ${error.message}` : typeof error}`, { cause: error });
          }
          expect(error.exitCode, `${error.code} for blob ${names[i]} byte ${offset} ^ ${xor}`).toBe(4);
        } finally {
          await rm(copyDir, { recursive: true, force: true });
        }
      }),
      { numRuns: 50 },
    );
  });
});
