// Library-level tests for signRelease/verifyRelease against a real OCI image
// layout (LayoutRepository in a temp dir, which answers the referrers API):
// a release verifies only through one signed release statement, and every way
// a release can be broken ends in an exit-4 error, never in a pass with other content.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import fc from "fast-check";
import { cp, mkdtemp, readFile, readdir, rm, stat, unlink, writeFile } from "node:fs/promises";
import { createPrivateKey, createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EMPTY_JSON, LayoutRepository, MediaTypes, attachFile, cosignAttestationTag, encodeManifest, parseReference, pushArtifact, pushReferrer } from "../oci/index.js";
import type { Descriptor } from "../oci/index.js";
import type { ImageManifest, PushedArtifact, Reference } from "../oci/index.js";
import { VerificationError, generateKeyPair } from "../sign/index.js";
import { createLock, serializeLock } from "../lock/index.js";
import type { ActivationLock } from "../lock/index.js";
import { AutonomyError, sha256Digest } from "../lib/index.js";
import { publishStatement, signRelease, signStatement, trustedKeys, verifyRelease } from "./index.js";
import type { ReleasePredicate, SignReleaseOptions, VerifyReleaseOptions, VerifyReleaseReport } from "./index.js";

const DAY_MS = 24 * 3600 * 1000;
/** A fixed clock: signing and verification never read the wall clock in these tests. */
const NOW = new Date("2025-06-01T12:00:00Z");
const REPO = "registry.example/prod/agent";
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

interface Keys {
  priv: KeyObject;
  pub: KeyObject;
}

function keyPair(): Keys {
  const p = generateKeyPair();
  return { priv: createPrivateKey(p.privatePem), pub: createPublicKey(p.publicPem) };
}

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

const blobPath = (dir: string, digest: string): string => join(dir, "blobs", "sha256", digest.slice("sha256:".length));
const reasons = (e: VerificationError): string[] => (e.details.skipped as { reason: string }[]).map((s) => s.reason);

describe("signRelease / verifyRelease on an OCI image layout", () => {
  let tmp: string;
  let dir: string;
  let repo: LayoutRepository;
  let ref: Reference;
  let trusted: Keys;
  let image: PushedArtifact;
  let bundle: Uint8Array;
  let lock: ActivationLock;
  let lockBytes: Uint8Array;
  let envelope: string;

  const trust = (over: Partial<VerifyReleaseOptions> = {}): VerifyReleaseOptions => ({
    trusted: trustedKeys([trusted.pub]), threshold: 1, channel: "stable", repository: REPO, now: NOW, tag: "v1", ...over,
  });
  const signOpts = (over: Partial<SignReleaseOptions> = {}): SignReleaseOptions => ({
    keys: [trusted.priv], now: NOW, sequence: 1, repository: REPO, lock: lockBytes, bundle: { bytes: bundle, name: "policy", version: "1.0.0" }, ...over,
  });
  const pushOther = (tag: string, content = `other agent ${tag}`): Promise<PushedArtifact> =>
    pushArtifact(repo, [{ name: "agent.py", data: enc(content) }], { artifactType: "application/vnd.autonomyops.artifact.v1", tag });
  const refFor = (tag: string): Reference => parseReference(`oci:${dir}:${tag}`);
  /** A lock for `subject` naming `b`. */
  const lockFor = async (subject: string, b: Uint8Array): Promise<Uint8Array> =>
    enc(serializeLock(await createLock({ agentImageRef: "agent", agentDigest: subject, policyBundleRef: "policy:v1", policyBundleDigest: sha256Digest(b) })));
  /** Signs and publishes a hand-made predicate (what a key holder could sign), bypassing signRelease's checks. */
  const publishPredicate = async (p: ReleasePredicate, keys: KeyObject[] = [trusted.priv]): Promise<string> => {
    const s = signStatement(p, keys);
    await publishStatement(repo, image.descriptor, s.envelope);
    return s.digest;
  };
  const goodPredicate = (over: Partial<ReleasePredicate> = {}): ReleasePredicate => ({
    sequence: 1, channel: "stable", repository: REPO, image: { digest: image.digest, mediaType: image.descriptor.mediaType },
    lock: { digest: sha256Digest(lockBytes), size: lockBytes.byteLength, behavioral_fingerprint: lock.behavioral_fingerprint },
    policy_bundle: { digest: sha256Digest(bundle), size: bundle.byteLength, name: "policy", version: "1.0.0" },
    issued_at: NOW.toISOString(), expires_at: new Date(NOW.getTime() + DAY_MS).toISOString(), ...over,
  });

  beforeEach(async () => {
    tmp = await mkdtemp(join(tmpdir(), "verify-release-"));
    dir = join(tmp, "oci");
    repo = new LayoutRepository(dir);
    ref = refFor("v1");
    trusted = keyPair();
    image = await pushArtifact(repo, [{ name: "agent.py", data: enc("print('agent v1')\n") }], { artifactType: "application/vnd.autonomyops.artifact.v1", tag: "v1" });
    bundle = enc("pretend this is bundle.tar.gz: permit(principal, action == Action::\"tool:echo\", resource);");
    lock = await createLock({ agentImageRef: `oci:${dir}:v1`, agentDigest: image.digest, policyBundleRef: "policy:v1", policyBundleDigest: sha256Digest(bundle) });
    lockBytes = enc(serializeLock(lock));
    const signed = await signRelease(repo, ref, signOpts());
    expect(signed.digest).toBe(image.digest);
    expect([signed.lock.attached, signed.policy.attached]).toEqual([true, true]);
    envelope = signed.statement.envelope;
  });

  afterEach(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("a good release verifies: the statement, then exactly the lock and bundle it names", async () => {
    const report = await verifyRelease(repo, "v1", trust());
    expect(report.artifact.digest).toBe(image.digest);
    expect(report.steps.map((s) => s.step)).toEqual(["statement", "artifact-digests", "lock", "policy"]);
    expect(report.statement.predicate).toMatchObject({ sequence: 1, channel: "stable", repository: REPO });
    expect(report.lock.blob).toBe(sha256Digest(lockBytes));
    expect(Buffer.from(report.lock.bytes)).toEqual(Buffer.from(lockBytes));
    expect(report.lock.lock.behavioral_fingerprint).toBe(lock.behavioral_fingerprint);
    expect(Buffer.from(report.policy.bytes)).toEqual(Buffer.from(bundle));
    expect(report.skipped).toEqual([]);
    expect(report.ignored).toEqual([]);
    const byDigest = await verifyRelease(repo, image.digest, trust({ tag: undefined }));
    expect(byDigest.statement.digest).toBe(report.statement.digest);
  });

  it("signing again attaches nothing new (the named files are found by blob digest)", async () => {
    const again = await signRelease(repo, ref, signOpts({ sequence: 2 }));
    expect([again.lock.attached, again.policy.attached]).toEqual([false, false]);
    expect((await verifyRelease(repo, "v1", trust())).statement.predicate.sequence).toBe(2);
  });

  it("sign refuses a lock that pins another image, or a bundle the lock does not name", async () => {
    const other = await pushOther("o");
    await expectVerification(signRelease(repo, refFor("o"), signOpts()), "ARTIFACT_DIGEST_MISMATCH");
    await expectVerification(signRelease(repo, refFor("o"), signOpts({ lock: await lockFor(other.digest, enc("another bundle")) })), "POLICY_DIGEST_MISMATCH");
  });

  it("an artifact never signed → STATEMENT_MISSING (exit 4), nothing skipped", async () => {
    const unsigned = await pushOther("unsigned");
    const e = await expectVerification(verifyRelease(repo, "unsigned", trust()), "STATEMENT_MISSING");
    expect(e.details).toMatchObject({ digest: unsigned.digest, skipped: [] });
  });

  it("a wrong public key → STATEMENT_MISSING with the threshold reason", async () => {
    const e = await expectVerification(verifyRelease(repo, "v1", trust({ trusted: trustedKeys([keyPair().pub]) })), "STATEMENT_MISSING");
    expect(reasons(e).join("\n")).toMatch(/0 of the required 1 trusted key/);
  });

  it("key compromise: with threshold 2 a statement signed by one of the two keys is refused; signed by both it verifies", async () => {
    const second = keyPair();
    const two = trust({ trusted: trustedKeys([trusted.pub, second.pub]), threshold: 2 });
    const e = await expectVerification(verifyRelease(repo, "v1", two), "STATEMENT_MISSING");
    expect(reasons(e).join("\n")).toMatch(/1 of the required 2/);
    await signRelease(repo, ref, signOpts({ keys: [trusted.priv, second.priv], sequence: 2 }));
    expect((await verifyRelease(repo, "v1", two)).statement.keyIds).toHaveLength(2);
  });

  it("a threshold of 0 (which would accept unsigned statements) or above the distinct keys fails closed", async () => {
    await expectVerification(verifyRelease(repo, "v1", trust({ threshold: 0 })), "STATEMENT_INVALID");
    await expectVerification(verifyRelease(repo, "v1", trust({ trusted: trustedKeys([trusted.pub, trusted.pub]), threshold: 2 })), "STATEMENT_INVALID");
    await expectVerification(verifyRelease(repo, "v1", trust({ trusted: [] })), "STATEMENT_INVALID");
  });

  it("a statement for another channel, repository, or image is skipped with its reason", async () => {
    await expectVerification(verifyRelease(repo, "v1", trust({ channel: "beta" })), "STATEMENT_MISSING")
      .then((e) => expect(reasons(e)).toEqual([expect.stringMatching(/signed for channel stable, not beta/)]));
    await expectVerification(verifyRelease(repo, "v1", trust({ repository: "registry.example/staging/agent" })), "STATEMENT_MISSING")
      .then((e) => expect(reasons(e)).toEqual([expect.stringMatching(/signed for repository registry.example\/prod\/agent, not registry.example\/staging\/agent/)]));
    // The envelope copied onto another image: the signed image digest is compared.
    const b = await pushOther("b");
    const s = signStatement(goodPredicate(), [trusted.priv]);
    await publishStatement(repo, b.descriptor, s.envelope);
    const e = await expectVerification(verifyRelease(repo, "b", trust()), "STATEMENT_MISSING");
    expect(reasons(e)).toEqual([expect.stringContaining(`signed for image ${image.digest}, not this artifact ${b.digest}`)]);
  });

  it("an expired statement, and one issued beyond the clock skew, are skipped; one minute ahead is accepted", async () => {
    const e = await expectVerification(verifyRelease(repo, "v1", trust({ now: new Date(NOW.getTime() + 91 * DAY_MS) })), "STATEMENT_MISSING");
    expect(reasons(e)).toEqual([expect.stringMatching(/^expired at/)]);
    const f = await expectVerification(verifyRelease(repo, "v1", trust({ now: new Date(NOW.getTime() - 3600_000) })), "STATEMENT_MISSING");
    expect(reasons(f)).toEqual([expect.stringMatching(/in the future/)]);
    await expect(verifyRelease(repo, "v1", trust({ now: new Date(NOW.getTime() - 60_000) }))).resolves.toBeDefined();
  });

  it("endless data: 100 junk envelopes appended to the .att tag fail closed (STATEMENT_CANDIDATES_EXCEEDED with the counts), no choice among some of them", async () => {
    const tag = cosignAttestationTag(image.digest);
    const att = await repo.getManifest(tag);
    const manifest = JSON.parse(new TextDecoder().decode(att.bytes)) as ImageManifest;
    for (let i = 0; i < 100; i++) {
      const junk = enc(`{"junk": ${i}}`);
      manifest.layers.push({ mediaType: MediaTypes.dsseEnvelope, digest: await repo.putBlob(junk), size: junk.byteLength });
    }
    await repo.putManifest(encodeManifest(manifest).bytes, manifest.mediaType, tag);
    const e = await expectVerification(verifyRelease(repo, "v1", trust()), "STATEMENT_CANDIDATES_EXCEEDED");
    expect(e.details).toMatchObject({ attLayers: 101, referrers: 1, bound: 32 });
  });

  /** A statement referrer of the image with these layers (an attacker with push rights, no key). */
  const pushStatementReferrer = async (layers: Descriptor[]): Promise<string> => {
    const config = { mediaType: MediaTypes.empty, digest: await repo.putBlob(EMPTY_JSON), size: EMPTY_JSON.byteLength };
    const m: ImageManifest = { schemaVersion: 2, mediaType: MediaTypes.imageManifest, artifactType: MediaTypes.releaseStatement, config, layers, subject: image.descriptor };
    return (await pushReferrer(repo, encodeManifest(m).bytes, m.mediaType)).digest;
  };
  const junkLayers = async (n: number, salt: string): Promise<Descriptor[]> =>
    Promise.all(Array.from({ length: n }, async (_, i) => { const b = enc(`junk ${salt} ${i}`); return { mediaType: MediaTypes.dsseEnvelope, digest: await repo.putBlob(b), size: b.byteLength }; }));
  /** Moves the manifest `digest` to the front of index.json: first in the referrers listing (a registry sorting by digest is ground the same way). */
  const listFirst = async (digest: string): Promise<void> => {
    const path = join(dir, "index.json");
    const idx = JSON.parse(await readFile(path, "utf8")) as { manifests: { digest: string }[] };
    idx.manifests.sort((a, b) => (a.digest === digest ? -1 : b.digest === digest ? 1 : 0));
    await writeFile(path, JSON.stringify(idx));
  };

  it("attack flood-downgrade: one referrer with release 1's public envelope + 31 junk DSSE layers, listed first, cannot make verify choose sequence 1 over sequence 2", async () => {
    const strict = enc("strict bundle: forbid(principal, action, resource);");
    const s2 = await signRelease(repo, ref, signOpts({ sequence: 2, now: new Date(NOW.getTime() + 1000), lock: await lockFor(image.digest, strict), bundle: { bytes: strict, name: "policy", version: "strict" } }));
    const env1: Descriptor = { mediaType: MediaTypes.dsseEnvelope, digest: envelope, size: (await repo.getBlob(envelope)).byteLength };
    await listFirst(await pushStatementReferrer([env1, ...(await junkLayers(31, "flood"))]));
    const report = await verifyRelease(repo, "v1", trust({ now: new Date(NOW.getTime() + 2000) }));
    expect(report.statement.predicate.sequence).toBe(2);
    expect(report.statement.predicate.policy_bundle.version).toBe("strict");
    expect(report.statement.digest).toBe(s2.statement.digest);
    expect(report.skipped).toContainEqual(expect.objectContaining({ reason: "has 32 layers; a statement manifest has exactly one (not read)" }));
  });

  it("attack flood-hide: a junk referrer with 32 DSSE layers (blobs missing) listed first does not hide the genuine statement", async () => {
    const missing = Array.from({ length: 32 }, (_, i) => ({ mediaType: MediaTypes.dsseEnvelope, digest: sha256Digest(enc(`missing ${i}`)), size: 10 }));
    await listFirst(await pushStatementReferrer(missing));
    expect((await verifyRelease(repo, "v1", trust())).statement.predicate.sequence).toBe(1);
  });

  it("attack flood-bound: 33 single-layer junk statement referrers fail closed with STATEMENT_CANDIDATES_EXCEEDED (exit 4) naming the counts, instead of choosing among the ones read", async () => {
    for (const [i, l] of (await junkLayers(33, "many")).entries()) await listFirst(await pushStatementReferrer([{ ...l, annotations: { n: String(i) } }]));
    const e = await expectVerification(verifyRelease(repo, "v1", trust()), "STATEMENT_CANDIDATES_EXCEEDED");
    expect(e.details).toMatchObject({ referrers: 34, attLayers: 1, bound: 32 });
    expect(e.message).toMatch(/34 statement referrers \(bound 32\)/);
  });

  /** Signs sequence 2 (a strict bundle) and returns it with its envelope's size. */
  const signSecond = async (): Promise<{ s2: Awaited<ReturnType<typeof signRelease>>; size: number }> => {
    const strict = enc("strict bundle: forbid(principal, action, resource);");
    const s2 = await signRelease(repo, ref, signOpts({ sequence: 2, now: new Date(NOW.getTime() + 1000), lock: await lockFor(image.digest, strict), bundle: { bytes: strict, name: "policy", version: "strict" } }));
    return { s2, size: (await repo.getBlob(s2.statement.envelope)).byteLength };
  };
  const later = (): VerifyReleaseOptions => trust({ now: new Date(NOW.getTime() + 2000) });
  /** Drops the manifest `digest` from index.json (the referrers listing). */
  const unlist = async (digest: string): Promise<void> => {
    const path = join(dir, "index.json");
    const idx = JSON.parse(await readFile(path, "utf8")) as { manifests: { digest: string }[] };
    idx.manifests = idx.manifests.filter((m) => m.digest !== digest);
    await writeFile(path, JSON.stringify(idx));
  };

  it("attack seen-poison: a referrer listed first whose one layer names the genuine sequence-2 envelope's digest and size with mediaType application/octet-stream does not hide sequence 2", async () => {
    const { s2, size } = await signSecond();
    const poison = await pushStatementReferrer([{ mediaType: "application/octet-stream", digest: s2.statement.envelope, size }]);
    await listFirst(poison);
    const report = await verifyRelease(repo, "v1", later());
    expect(report.statement.predicate.sequence).toBe(2);
    expect(report.statement.envelope.layer).toMatchObject({ mediaType: MediaTypes.dsseEnvelope, digest: s2.statement.envelope });
    const refused = report.skipped.find((s) => s.candidate === `${poison}#${s2.statement.envelope}`);
    expect(refused?.reason).toMatch(/media type "application\/octet-stream"/);
  });

  it("attack seen-poison (.att path): the poison referrer listed first, the genuine sequence-2 envelope reachable only through the .att tag, still yields sequence 2", async () => {
    const { s2, size } = await signSecond();
    await unlist(s2.statement.referrer);
    await listFirst(await pushStatementReferrer([{ mediaType: "application/octet-stream", digest: s2.statement.envelope, size }]));
    const report = await verifyRelease(repo, "v1", later());
    expect(report.statement.predicate.sequence).toBe(2);
    expect(report.statement.envelope).toMatchObject({ source: "cosign-att-tag", manifest: cosignAttestationTag(image.digest) });
  });

  it("attack seen-poison (genuine first, poison later): a wrong-type or oversized layer naming the envelope after it changes nothing; the same envelope under the .att tag is read once", async () => {
    const { s2, size } = await signSecond();
    await pushStatementReferrer([{ mediaType: "application/octet-stream", digest: s2.statement.envelope, size }]);
    await pushStatementReferrer([{ mediaType: MediaTypes.dsseEnvelope, digest: s2.statement.envelope, size: 1 << 20 }]);
    const report = await verifyRelease(repo, "v1", later());
    expect(report.statement.predicate.sequence).toBe(2);
    expect(report.statement.envelope.manifest).toBe(s2.statement.referrer);
    expect(Buffer.from(report.statement.envelope.bytes)).toEqual(Buffer.from(await repo.getBlob(s2.statement.envelope)));
    expect(report.skipped.map((s) => s.reason)).toEqual(expect.arrayContaining([expect.stringMatching(/media type/), expect.stringMatching(/over the 65536-byte statement cap/)]));
    expect(report.skipped.filter((s) => s.candidate.endsWith(s2.statement.envelope) && s.source === "cosign-att-tag")).toEqual([]);
  });

  it("attack forged envelope on sign reuse: re-signing the same release reports the envelope that verified, not a referrer listed first with the genuine payload and a junk signature", async () => {
    const g = JSON.parse(new TextDecoder().decode(await repo.getBlob(envelope))) as { payloadType: string; payload: string };
    const forged = enc(JSON.stringify({ payloadType: g.payloadType, payload: g.payload, signatures: [{ keyid: "attacker", sig: Buffer.alloc(64, 7).toString("base64") }] }));
    const layer: Descriptor = { mediaType: MediaTypes.dsseEnvelope, digest: await repo.putBlob(forged), size: forged.byteLength };
    await listFirst(await pushStatementReferrer([layer]));
    const again = await signRelease(repo, ref, signOpts());
    expect(again.reused).toBe(true);
    expect(again.statement.envelope).toBe(envelope);
  });

  it("of several valid statements the highest sequence is chosen", async () => {
    await publishPredicate(goodPredicate({ sequence: 7 }));
    await publishPredicate(goodPredicate({ sequence: 3 }));
    expect((await verifyRelease(repo, "v1", trust())).statement.predicate.sequence).toBe(7);
  });

  it("two different valid statements at the highest sequence → STATEMENT_EQUIVOCATION naming both digests", async () => {
    const a = await publishPredicate(goodPredicate({ sequence: 5 }));
    const b = await publishPredicate(goodPredicate({ sequence: 5, channel: "stable", issued_at: new Date(NOW.getTime() - 1000).toISOString() }));
    const e = await expectVerification(verifyRelease(repo, "v1", trust()), "STATEMENT_EQUIVOCATION");
    expect(e.details.digests).toEqual(expect.arrayContaining([a, b]));
    expect(e.details.sequence).toBe(5);
  });

  it("a statement naming a lock with another fingerprint → STATEMENT_LOCK_MISMATCH", async () => {
    await publishPredicate(goodPredicate({ sequence: 2, lock: { digest: sha256Digest(lockBytes), size: lockBytes.byteLength, behavioral_fingerprint: `blake3:${"0".repeat(64)}` } }));
    const e = await expectVerification(verifyRelease(repo, "v1", trust()), "STATEMENT_LOCK_MISMATCH");
    expect(e.details).toEqual({ expected: `blake3:${"0".repeat(64)}`, actual: lock.behavioral_fingerprint });
  });

  it("the named lock or bundle absent from the store → LOCK_MISSING / POLICY_MISSING; altered → BLOB_DIGEST_MISMATCH", async () => {
    const copy = join(tmp, "copy");
    await cp(dir, copy, { recursive: true });
    await unlink(blobPath(copy, sha256Digest(bundle)));
    await expectVerification(verifyRelease(new LayoutRepository(copy), "v1", trust()), "POLICY_MISSING");
    await unlink(blobPath(dir, sha256Digest(lockBytes)));
    await expectVerification(verifyRelease(repo, "v1", trust()), "LOCK_MISSING");
    const path = blobPath(copy, sha256Digest(lockBytes));
    const data = await readFile(path);
    data[0] = data[0]! ^ 1;
    await writeFile(path, data);
    await expectVerification(verifyRelease(new LayoutRepository(copy), "v1", trust()), "BLOB_DIGEST_MISMATCH");
  });

  it("an attacker's extra lock and bundle (attached, even signed with their key) are ignored and listed; the statement's are used", async () => {
    const evilBundle = enc("attacker bundle: permit(principal, action, resource);");
    const evilLock = await lockFor(image.digest, evilBundle);
    await attachFile(repo, image.descriptor, { name: "autonomy.lock.json", data: evilLock }, { artifactType: MediaTypes.lock });
    await attachFile(repo, image.descriptor, { name: "bundle.tar.gz", data: evilBundle }, { artifactType: MediaTypes.policyBundle });
    await signRelease(repo, ref, signOpts({ keys: [keyPair().priv], sequence: 99, lock: evilLock, bundle: { bytes: evilBundle, name: "evil", version: "6.6.6" } }));
    const report = await verifyRelease(repo, "v1", trust());
    expect(report.statement.predicate.sequence).toBe(1);
    expect(report.policy.blob).toBe(sha256Digest(bundle));
    expect(report.lock.blob).toBe(sha256Digest(lockBytes));
    expect(report.ignored.map((i) => i.blob).sort()).toEqual([sha256Digest(evilBundle), sha256Digest(evilLock)].sort());
    expect(report.skipped.map((s) => s.reason)).toEqual([expect.stringMatching(/0 of the required 1/)]);
  });

  it("every blob file of a good release, one byte flipped: refused with exit 4, or verified with exactly the same statement, lock and bundle", async () => {
    const good = await verifyRelease(repo, "v1", trust());
    const names = (await readdir(join(dir, "blobs", "sha256"))).sort();
    // What verification depends on: the image (manifest, config, layer), the one envelope, the lock and the bundle.
    const mustRefuse = new Set([image.digest, ...image.manifest.layers.map((l) => l.digest), image.manifest.config.digest, envelope, sha256Digest(lockBytes), sha256Digest(bundle)].map((d) => d.slice(7)));
    for (const name of names) {
      const copyDir = join(tmp, `flip-${name}`);
      await cp(dir, copyDir, { recursive: true });
      const file = join(copyDir, "blobs", "sha256", name);
      const data = await readFile(file);
      data[data.length - 1] = data[data.length - 1]! ^ 0x01;
      await writeFile(file, data);
      const outcome = await verifyRelease(new LayoutRepository(copyDir), "v1", trust()).catch((e: unknown) => e);
      sameOrRefused(outcome, good, name);
      if (mustRefuse.has(name)) expect(outcome, name).toBeInstanceOf(AutonomyError);
    }
  });

  it("attack hostile copy exit code: an image layer missing from the copy, or junk at the target tag, is ARTIFACT_INVALID (exit 4), not exit 1", async () => {
    const m = JSON.parse(new TextDecoder().decode(await readFile(blobPath(dir, image.digest)))) as ImageManifest;
    const layer = (m.layers[0] as Descriptor).digest;
    await unlink(blobPath(dir, layer));
    const missing = await expectVerification(verifyRelease(repo, "v1", trust()), "ARTIFACT_INVALID");
    expect(missing.message).toMatch(/layer sha256:[0-9a-f]{64} of the release is missing or malformed: OCI_NOT_FOUND/);
    // Junk at the target tag (index.json points v1 at a blob that is no manifest).
    const junk = enc(JSON.stringify({ schemaVersion: 2, mediaType: "application/x-junk", layers: [] }));
    const idxPath = join(dir, "index.json");
    const idx = JSON.parse(await readFile(idxPath, "utf8")) as { manifests: { digest: string; size: number; annotations?: Record<string, string> }[] };
    const tagged = idx.manifests.find((d) => d.annotations?.["org.opencontainers.image.ref.name"] === "v1");
    if (tagged === undefined) throw new Error("v1 not tagged");
    Object.assign(tagged, { digest: await repo.putBlob(junk), size: junk.byteLength });
    await writeFile(idxPath, JSON.stringify(idx));
    await expectVerification(verifyRelease(repo, "v1", trust()), "ARTIFACT_INVALID");
    // A tag that does not exist is a caller's mistake, not hostile content: still exit 1.
    const e = await thrown(verifyRelease(repo, "no-such-tag", trust()));
    expect((e as AutonomyError).exitCode).toBe(1);
  });

  it("property: flipping one byte of any blob file never yields another release than the good one", async () => {
    const good = await verifyRelease(repo, "v1", trust());
    const blobsDir = join(dir, "blobs", "sha256");
    const names = (await readdir(blobsDir)).sort();
    const sizes = await Promise.all(names.map(async (n) => (await stat(join(blobsDir, n))).size));
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
          sameOrRefused(await verifyRelease(new LayoutRepository(copyDir), "v1", trust()).catch((e: unknown) => e), good, `${names[i]} byte ${offset} ^ ${xor}`);
        } finally {
          await rm(copyDir, { recursive: true, force: true });
        }
      }),
      { numRuns: 40 },
    );
  });
});

/** An exit-4 AutonomyError, or a report naming exactly the good statement, lock and bundle. */
function sameOrRefused(outcome: unknown, good: VerifyReleaseReport, what: string): void {
  if (outcome instanceof AutonomyError) {
    expect(outcome.exitCode, `${outcome.code} for ${what}`).toBe(4);
    return;
  }
  if (outcome instanceof Error) throw new Error(`${what}: a non-AutonomyError: ${outcome.name}: ${outcome.message}`, { cause: outcome });
  const r = outcome as VerifyReleaseReport;
  expect([r.statement.digest, r.lock.blob, r.policy.blob], what).toEqual([good.statement.digest, good.lock.blob, good.policy.blob]);
}
