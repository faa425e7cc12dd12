/**
 * Issue 9's registry-side attacks on a release, each played against the real
 * Debian docker-registry 2.8 on loopback (no referrers API: the sha256-<hex>
 * fallback index is an ordinary tag anyone with push rights can rewrite) and,
 * where the referrers API matters, against an image layout (which answers it).
 * The attacker has push rights but not the release key.
 */
import { mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  EMPTY_JSON, LayoutRepository, MediaTypes, attachFile, encodeManifest, openRepository, parseReference, pushArtifact, pushReferrer, referrersFallbackTag, repositoryName,
} from "../../src/oci/index.js";
import type { Descriptor, ImageIndex, ImageManifest, OciRepository } from "../../src/oci/index.js";
import { VerificationError } from "../../src/sign/index.js";
import { createLock, serializeLock } from "../../src/lock/index.js";
import { sha256Digest } from "../../src/lib/index.js";
import { findStatements, rollbackRelease, signRelease, trustedKeys, verifyRelease } from "../../src/supplychain/index.js";
import type { VerifyReleaseOptions } from "../../src/supplychain/index.js";
import { activateRelease } from "../../src/runtime/index.js";
import { setTrustRoot } from "../../src/node/index.js";
import { describeRun, runCli, runJson } from "../helpers/cli.js";
import type { CliJson } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";
import { startRegistry } from "../helpers/registry.js";
import type { StartedRegistry } from "../helpers/registry.js";
import { makeRelease, makeReleaseParts, policyDir, signOptionsFor, testKeys } from "../helpers/release.js";
import type { ReleaseParts, TestKeys } from "../helpers/release.js";

const withRegistry = needs("docker-registry");
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const PERMISSIVE = `permit(principal, action, resource);\n`;

let registry: StartedRegistry;
let dir: string;
let keys: TestKeys;
let pubPath: string;
let counter = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "release-attacks-"));
  keys = testKeys();
  pubPath = join(dir, "release.pub");
  await writeFile(pubPath, keys.publicPem);
  if (!withRegistry.skipped) {
    withRegistry.check();
    registry = await startRegistry();
  }
});

afterAll(async () => {
  await registry?.stop();
  await rm(dir, { recursive: true, force: true });
});

const trustFor = (repository: string, over: Partial<VerifyReleaseOptions> = {}): VerifyReleaseOptions => ({
  trusted: trustedKeys([keys.publicKey]), threshold: 1, channel: "stable", repository, now: new Date(), ...over,
});

/** The CLI spelling of a registry release's ref. */
const refString = (parts: ReleaseParts): string => (parts.ref.kind === "registry" ? `${parts.ref.registry}/${parts.ref.repository}:${parts.ref.tag ?? "latest"}` : "");

/** A fresh registry repository name per test (blobs are shared on the registry's disk, tags are not). */
const registryRef = (name: string, tag = "v1"): string => `${registry.host}/${name}-${++counter}:${tag}`;

/** An attacker's lock and permissive bundle pinning `parts`' image, as bytes. */
async function attackerFiles(parts: ReleaseParts): Promise<{ lock: Uint8Array; bundle: Uint8Array }> {
  const bundle = enc(`attacker bundle ${++counter}: ${PERMISSIVE}`);
  const lock = await createLock({ agentImageRef: "evil", agentDigest: parts.image.digest, policyBundleRef: "evil:6.6.6", policyBundleDigest: sha256Digest(bundle) });
  return { lock: enc(serializeLock(lock)), bundle };
}

/** Attaches the attacker's files (push rights, no key). */
async function attachAttacker(repo: OciRepository, subject: Descriptor, files: { lock: Uint8Array; bundle: Uint8Array }): Promise<Descriptor[]> {
  const l = await attachFile(repo, subject, { name: "autonomy.lock.json", data: files.lock }, { artifactType: MediaTypes.lock });
  const b = await attachFile(repo, subject, { name: "bundle.tar.gz", data: files.bundle }, { artifactType: MediaTypes.policyBundle });
  return [l.descriptor, b.descriptor].map((d, i) => ({ ...d, artifactType: i === 0 ? MediaTypes.lock : MediaTypes.policyBundle }));
}

/** A referrer manifest with `layers` (anything an attacker can push), published for `subject`. */
async function pushJunkReferrer(repo: OciRepository, subject: Descriptor, artifactType: string, layers: Descriptor[]): Promise<string> {
  const config: Descriptor = { mediaType: MediaTypes.empty, digest: await repo.putBlob(EMPTY_JSON), size: EMPTY_JSON.byteLength };
  const m: ImageManifest = { schemaVersion: 2, mediaType: MediaTypes.imageManifest, artifactType, config, layers, subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size } };
  return (await pushReferrer(repo, encodeManifest(m).bytes, m.mediaType)).digest;
}

async function expectVerificationCode(p: Promise<unknown>, code: string): Promise<VerificationError> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(VerificationError);
  expect({ code: (e as VerificationError).code, exit: (e as VerificationError).exitCode }).toEqual({ code, exit: 4 });
  return e as VerificationError;
}

describe("attack 3: sign signs only what the operator names", () => {
  /** The attack on one store: the attacker's lock and bundle are attached and the fallback index lists only them. */
  async function rewriteAndSign(parts: ReleaseParts): Promise<void> {
    const evil = await attackerFiles(parts);
    const evilDescs = await attachAttacker(parts.repo, parts.image.descriptor, evil);
    if (!(await parts.repo.capabilities()).referrersApi) {
      // Registry-side rewrite: the fallback index now lists only the attacker's attachments.
      const index: ImageIndex = { schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests: evilDescs };
      await parts.repo.putManifest(encodeManifest(index).bytes, MediaTypes.imageIndex, referrersFallbackTag(parts.image.digest));
    }
    const signed = await signRelease(parts.repo, parts.ref, signOptionsFor(parts, { keys, repository: "prod.example/agent" }));
    expect(signed.statement.predicate.lock.digest).toBe(sha256Digest(parts.lockBytes));
    expect(signed.statement.predicate.policy_bundle.digest).toBe(parts.bundle.digest);
    expect(signed.unnamed.map((u) => u.blob).sort()).toEqual([sha256Digest(evil.lock), sha256Digest(evil.bundle)].sort());
    const report = await verifyRelease(parts.repo, parts.image.digest, trustFor("prod.example/agent"));
    expect([report.lock.blob, report.policy.blob]).toEqual([sha256Digest(parts.lockBytes), parts.bundle.digest]);
    expect(report.ignored.map((i) => i.blob)).toEqual(expect.arrayContaining([sha256Digest(evil.lock), sha256Digest(evil.bundle)]));
    expect(report.ignored.map((i) => i.blob)).not.toContain(parts.bundle.digest);
  }

  withRegistry.it("attack 3: a registry-side rewrite of the fallback index listing another lock and bundle is never signed — sign signs only the named files (registry, fallback index)", async () => {
    await rewriteAndSign(await makeReleaseParts({ ref: registryRef("attack3") }));
  });

  it("attack 3: a registry-side rewrite of the fallback index listing another lock and bundle is never signed — sign signs only the named files (layout, referrers API)", async () => {
    await rewriteAndSign(await makeReleaseParts({ ref: `oci:${join(dir, `attack3-${++counter}`)}:v1` }));
  });

  it("attack 3: with the referrers API an extra pushed lock does not make ATTACHMENT_AMBIGUOUS — the statement's lock is used", async () => {
    const parts = await makeReleaseParts({ ref: `oci:${join(dir, `ambiguous-${++counter}`)}:v1` });
    await signRelease(parts.repo, parts.ref, signOptionsFor(parts, { keys, repository: "prod.example/agent" }));
    const evil = await attackerFiles(parts);
    await attachAttacker(parts.repo, parts.image.descriptor, evil);
    // The operator signs the next release of the same image: the extra lock is reported, not signed.
    const next = await signRelease(parts.repo, parts.ref, signOptionsFor(parts, { keys, repository: "prod.example/agent", sequence: 2 }));
    expect(next.unnamed.map((u) => u.blob)).toContain(sha256Digest(evil.lock));
    const report = await verifyRelease(parts.repo, "v1", trustFor("prod.example/agent"));
    expect(report.statement.predicate.sequence).toBe(2);
    expect(report.lock.blob).toBe(sha256Digest(parts.lockBytes));
    expect(report.ignored).toEqual(expect.arrayContaining([expect.objectContaining({ artifactType: MediaTypes.lock, blob: sha256Digest(evil.lock) })]));
  });
});

describe("attack 4: hostile registry content is skipped, not trusted and not fatal", () => {
  /**
   * Plants every kind of junk for `subject`: an unsigned cosign signature (its
   * payload to vanish), and statement candidates that are garbage JSON, of a
   * wrong layer media type, declaring 2 GiB, and whose envelope is to vanish.
   * Returns the four statement skip reasons expected and the blobs to remove.
   */
  async function plantJunk(repo: OciRepository, subject: Descriptor): Promise<{ reasons: RegExp[]; vanish: string[] }> {
    const n = ++counter;
    const payload = await repo.putBlob(enc(`placeholder ${n}`));
    await pushJunkReferrer(repo, subject, MediaTypes.cosignSignatureArtifact, [{ mediaType: MediaTypes.cosignSimpleSigning, digest: payload, size: `placeholder ${n}`.length }]);
    const garbage = enc(`{ not json ${n}`);
    await pushJunkReferrer(repo, subject, MediaTypes.releaseStatement, [{ mediaType: MediaTypes.dsseEnvelope, digest: await repo.putBlob(garbage), size: garbage.byteLength }]);
    const text = enc(`plain text ${n}`);
    await pushJunkReferrer(repo, subject, MediaTypes.releaseStatement, [{ mediaType: "text/plain", digest: await repo.putBlob(text), size: text.byteLength }]);
    const big = enc(`pretend to be big ${n}`);
    await pushJunkReferrer(repo, subject, MediaTypes.releaseStatement, [{ mediaType: MediaTypes.dsseEnvelope, digest: await repo.putBlob(big), size: 2 * 1024 ** 3 }]);
    const gone = enc(`{"payload":"","payloadType":"x","signatures":[]} ${n}`);
    const goneDigest = await repo.putBlob(gone);
    await pushJunkReferrer(repo, subject, MediaTypes.releaseStatement, [{ mediaType: MediaTypes.dsseEnvelope, digest: goneDigest, size: gone.byteLength }]);
    return {
      reasons: [/^not a DSSE envelope: not JSON/, /^layer media type "text\/plain"/, /^declares 2147483648 bytes, over the 65536-byte statement cap \(not read\)/, /^envelope blob unreadable/],
      vanish: [payload, goneDigest],
    };
  }

  /** Removes a blob from the registry's disk (what "the payload blob is missing" looks like to a client). */
  async function removeFromRegistry(digest: string): Promise<void> {
    const hex = digest.slice("sha256:".length);
    await unlink(join(registry.dataDir, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data"));
  }

  withRegistry.it("attack 4: a junk referrer (unsigned, payload blob missing) does not block a valid release; verify exits 4 (not 1) listing every reason when nothing valid remains", async () => {
    const good = await makeReleaseParts({ ref: registryRef("junk") });
    const junk = await plantJunk(good.repo, good.image.descriptor);
    // The signature's payload and one envelope vanish from storage after being referenced.
    for (const d of junk.vanish) await removeFromRegistry(d);
    await signRelease(good.repo, good.ref, signOptionsFor(good, { keys }));
    const okRun = await runJson<CliJson & { skipped: { reason: string }[]; statement: { predicate: { sequence: number } } }>(["verify", refString(good), "--key", pubPath, "--plain-http"]);
    expect(okRun.code, describeRun(okRun)).toBe(0);
    expect(okRun.json.statement.predicate.sequence).toBe(1);
    expect(okRun.json.skipped.map((s) => s.reason)).toEqual(expect.arrayContaining(junk.reasons.map((re): unknown => expect.stringMatching(re))));
    expect(okRun.json.skipped).toHaveLength(junk.reasons.length);
    // The text output lists them too, one line per skipped candidate.
    const text = await runCli(["verify", refString(good), "--key", pubPath, "--plain-http"]);
    expect(text.code, describeRun(text)).toBe(0);
    expect(text.stdout).toContain("skipped statement candidates:");
    for (const s of okRun.json.skipped) expect(text.stdout).toContain(s.reason);

    // The same junk on an image with no statement at all: exit 4 (not 1), every reason listed.
    const bare = await makeReleaseParts({ ref: registryRef("junk-only") });
    const junk2 = await plantJunk(bare.repo, bare.image.descriptor);
    for (const d of junk2.vanish) await removeFromRegistry(d);
    const r = await runJson<CliJson & { skipped: { reason: string; source: string }[] }>(["verify", refString(bare), "--key", pubPath, "--plain-http"]);
    expect({ exit: r.code, code: r.json.code }, describeRun(r)).toEqual({ exit: 4, code: "STATEMENT_MISSING" });
    const reasons = r.json.skipped.map((s) => s.reason);
    expect(reasons).toEqual(expect.arrayContaining(junk2.reasons.map((re): unknown => expect.stringMatching(re))));
    expect(reasons).toHaveLength(junk2.reasons.length);
    for (const reason of reasons) expect(String(r.json.message)).toContain(reason);
  });

  it("attack 4: a candidate declaring 2 GiB is skipped without being read", async () => {
    const layoutDir = join(dir, `big-${++counter}`);
    const inner = new LayoutRepository(layoutDir);
    const image = await pushArtifact(inner, [{ name: "a", data: enc("agent") }], { artifactType: "application/vnd.autonomyops.agent.v1", tag: "v1" });
    // A real file on disk behind the lie: reading it would cost the full size.
    const big = new Uint8Array(1024 * 1024);
    const bigDigest = await inner.putBlob(big);
    await pushJunkReferrer(inner, image.descriptor, MediaTypes.releaseStatement, [{ mediaType: MediaTypes.dsseEnvelope, digest: bigDigest, size: 2 * 1024 ** 3 }]);
    await pushJunkReferrer(inner, image.descriptor, MediaTypes.releaseStatement, [{ mediaType: MediaTypes.dsseEnvelope, digest: bigDigest, size: 64 * 1024 }]);
    const read: string[] = [];
    const spy = new Proxy(inner, {
      get(t, p): unknown {
        const v = Reflect.get(t, p, t) as unknown;
        if (p === "getBlob" || p === "blobChunks" || p === "verifyBlob") {
          return (digest: string, opts?: { expectedSize?: number }) => {
            read.push(`${digest}@${opts?.expectedSize ?? "?"}`);
            return (v as (d: string, o?: unknown) => unknown).call(t, digest, opts);
          };
        }
        return typeof v === "function" ? ((v as (...a: unknown[]) => unknown).bind(t)) : v;
      },
    });
    const { valid, skipped } = await findStatements(spy, image.digest, trustFor("prod.example/agent"));
    expect(valid).toEqual([]);
    expect(skipped.map((s) => s.reason)).toEqual(expect.arrayContaining([
      expect.stringMatching(/^declares 2147483648 bytes, over the 65536-byte statement cap \(not read\)/),
      expect.stringMatching(/^envelope blob unreadable: OCI_SIZE_MISMATCH/),
    ]));
    // Never asked for at the declared 2 GiB; the 64 KiB declaration is read only up to 64 KiB (then refused).
    expect(read.filter((r) => r.startsWith(bigDigest))).toEqual([`${bigDigest}@${64 * 1024}`]);
  });
});

withRegistry.describe("attack 6: the signed identity is compared", () => {
  it("attack 6: a staging release (signed for registry/staging/agent) copied into registry/prod/agent is refused", async () => {
    const staging = await makeReleaseParts({ ref: `${registry.host}/staging/agent-${++counter}:v1` });
    await signRelease(staging.repo, staging.ref, signOptionsFor(staging, { keys }));
    const stagingRef = `${registry.host}/staging/agent-${counter}:v1`;
    const prodRef = `${registry.host}/prod/agent-${counter}:v1`;
    expect((await runJson(["verify", stagingRef, "--key", pubPath, "--plain-http"])).code).toBe(0);
    const copied = await runJson(["oci", "copy", stagingRef, prodRef, "--plain-http"]);
    expect(copied.code, describeRun(copied)).toBe(0);
    const r = await runJson<CliJson & { skipped: { reason: string }[] }>(["verify", prodRef, "--key", pubPath, "--plain-http"]);
    expect({ exit: r.code, code: r.json.code }, describeRun(r)).toEqual({ exit: 4, code: "STATEMENT_MISSING" });
    expect(r.json.skipped.map((s) => s.reason)).toEqual([`signed for repository ${registry.host}/staging/agent-${counter}, not ${registry.host}/prod/agent-${counter}`]);
  });
});

withRegistry.describe("attack 1 (registry side): mix-and-match", () => {
  it("attack 1 (registry side): release 1's lock+bundle mixed with release 2's signatures is never accepted as sequence 2", async () => {
    const identity = `${registry.host}/prod/mix-${++counter}`;
    const permissive = await policyDir({ "all.cedar": PERMISSIVE });
    // Release 1: image A + a permissive bundle, sequence 1. Release 2: the same image A + the strict example bundle, sequence 2.
    const r1 = await makeReleaseParts({ ref: `${registry.host}/r1/mix-${counter}:v1`, policies: permissive, agentText: "image A" });
    const s1 = await signRelease(r1.repo, r1.ref, signOptionsFor(r1, { keys, sequence: 1, repository: identity }));
    const r2 = await makeReleaseParts({ ref: `${registry.host}/r2/mix-${counter}:v1`, bundleVersion: "2.0.0", agentText: "image A" });
    const s2 = await signRelease(r2.repo, r2.ref, signOptionsFor(r2, { keys, sequence: 2, repository: identity }));
    expect(r1.image.digest).toBe(r2.image.digest);

    // The mixed store: the image, release 1's lock, bundle and statement, and release 2's signatures.
    const mixed = openRepository(parseReference(`${identity}:v1`), { plainHttp: true });
    await copyManifest(r1.repo, mixed, r1.image.digest, "v1");
    for (const d of [s1.lock.manifest, s1.policy.manifest, s1.statement.referrer]) await copyManifest(r1.repo, mixed, d);
    for (const d of s2.signatures) await copyManifest(r2.repo, mixed, d);
    let report = await verifyRelease(mixed, "v1", trustFor(identity));
    expect(report.statement.predicate.sequence).toBe(1);
    expect(report.policy.blob).toBe(r1.bundle.digest);

    // Release 2's statement copied in too (its lock and bundle not): sequence 2 is chosen and needs ITS files.
    await copyManifest(r2.repo, mixed, s2.statement.referrer);
    await expectVerificationCode(verifyRelease(mixed, "v1", trustFor(identity)), "LOCK_MISSING");

    // With release 2's files present it is release 2, whole: never sequence 2 with release 1's bundle.
    await copyManifest(r2.repo, mixed, s2.lock.manifest);
    await copyManifest(r2.repo, mixed, s2.policy.manifest);
    report = await verifyRelease(mixed, "v1", trustFor(identity));
    expect([report.statement.predicate.sequence, report.policy.blob]).toEqual([2, r2.bundle.digest]);
    expect(report.ignored.map((i) => i.blob)).toEqual(expect.arrayContaining([r1.bundle.digest, sha256Digest(r1.lockBytes)]));
  });
});

withRegistry.describe("signing refuses when the tag moves", () => {
  it("refuses with TAG_MOVED (exit 4) when REF's tag is moved while signing, and publishes no statement", async () => {
    const parts = await makeReleaseParts({ ref: registryRef("moving") });
    let moved = false;
    // Another pusher moves the tag while we sign (right after our first write).
    const racing = new Proxy(parts.repo, {
      get(t, p): unknown {
        const v = Reflect.get(t, p, t) as unknown;
        if (p === "putManifest") {
          return async (bytes: Uint8Array, mediaType: string, tag?: string) => {
            const r = await (v as (b: Uint8Array, m: string, t?: string) => Promise<string>).call(t, bytes, mediaType, tag);
            if (!moved) {
              moved = true;
              await pushArtifact(t, [{ name: "agent.py", data: enc("someone else's agent") }], { artifactType: "application/vnd.autonomyops.agent.v1", tag: "v1" });
            }
            return r;
          };
        }
        return typeof v === "function" ? ((v as (...a: unknown[]) => unknown).bind(t)) : v;
      },
    });
    const e = await expectVerificationCode(signRelease(racing, parts.ref, signOptionsFor(parts, { keys })), "TAG_MOVED");
    expect(e.details).toMatchObject({ tag: "v1", signed: parts.image.digest });
    const { valid } = await findStatements(parts.repo, parts.image.digest, trustFor(refString(parts).replace(/:v1$/, "")));
    expect(valid).toEqual([]);
  });
});

/** Copies one manifest (by digest) and its blobs from `src` to `dst`, as a referrer when it has a subject. */
async function copyManifest(src: OciRepository, dst: OciRepository, digest: string, tag?: string): Promise<void> {
  const m = await src.getManifest(digest);
  const parsed = JSON.parse(new TextDecoder().decode(m.bytes)) as ImageManifest;
  for (const d of [parsed.config, ...parsed.layers]) {
    if (!(await dst.hasBlob(d.digest))) await dst.putBlob(await src.getBlob(d.digest, { expectedSize: d.size }));
  }
  if (parsed.subject) await pushReferrer(dst, m.bytes, m.mediaType);
  else await dst.putManifest(m.bytes, m.mediaType, tag);
}

describe("attack 4 on the node: activation copies a verified release past junk referrers", () => {
  it("attack 4: a junk referrer (unsigned signature, payload blob missing) does not block activating a valid release", async () => {
    const ref = `oci:${join(dir, `activate-junk-${++counter}`)}:v1`;
    const parts = await makeReleaseParts({ ref });
    await signRelease(parts.repo, parts.ref, signOptionsFor(parts, { keys }));
    const missing = sha256Digest(enc(`never stored ${counter}`));
    await pushJunkReferrer(parts.repo, parts.image.descriptor, MediaTypes.cosignSignatureArtifact, [{ mediaType: MediaTypes.cosignSimpleSigning, digest: missing, size: 20 }]);
    const stateRoot = join(dir, `node-${counter}`);
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: repositoryName(parts.ref) });
    const r = await activateRelease({ ref: parts.ref, stateRoot });
    expect(r.activation.image_digest).toBe(parts.image.digest);
    expect(r.verification.statement.predicate.sequence).toBe(1);
  });
});

describe("careless operator: re-running `autonomy sign` at the same sequence", () => {
  const NOW = new Date();
  const later = (ms: number): Date => new Date(NOW.getTime() + ms);
  const REPO = "registry.example/prod/agent";

  it("sign retry: re-running `sign --sequence 2` after a crash/timeout reuses the published statement, so the image stays verifiable (no STATEMENT_EQUIVOCATION)", async () => {
    const parts = await makeReleaseParts({ ref: `oci:${dir}/retry-${++counter}:v1` });
    const first = await signRelease(parts.repo, parts.ref, { ...signOptionsFor(parts, { keys, sequence: 2, repository: REPO }), now: NOW });
    const again = await signRelease(parts.repo, parts.ref, { ...signOptionsFor(parts, { keys, sequence: 2, repository: REPO }), now: later(60_000) });
    expect(first.reused).toBe(false);
    expect(again.reused).toBe(true);
    expect(again.statement.digest).toBe(first.statement.digest);
    expect(again.statement.envelope).toBe(first.statement.envelope);
    const r = await verifyRelease(parts.repo, "v1", trustFor(REPO, { now: later(120_000) }));
    expect([r.statement.predicate.sequence, r.statement.digest]).toEqual([2, first.statement.digest]);
    const { valid } = await findStatements(parts.repo, parts.image.digest, trustFor(REPO, { now: later(120_000) }));
    expect(valid.map((s) => s.digest)).toEqual([first.statement.digest]);
  });

  it("sign retry: other content at a sequence the image already carries, or below a higher one, is refused (usage error) before anything is published", async () => {
    const ref = `oci:${dir}/retry-${++counter}:v1`;
    const a = await makeReleaseParts({ ref });
    await signRelease(a.repo, a.ref, { ...signOptionsFor(a, { keys, sequence: 2, repository: REPO }), now: NOW });
    const b = await makeReleaseParts({ ref, bundleVersion: "2.0.0" });
    expect(b.image.digest).toBe(a.image.digest);
    for (const sequence of [2, 1]) {
      const e = await signRelease(b.repo, b.ref, { ...signOptionsFor(b, { keys, sequence, repository: REPO }), now: later(60_000) }).catch((x: unknown) => x);
      expect(e).toMatchObject({ code: "USAGE", exitCode: 2 });
      expect((e as Error).message).toContain("already carries a different release statement at sequence");
    }
    const { valid } = await findStatements(a.repo, a.image.digest, trustFor(REPO, { now: later(120_000) }));
    expect(valid.map((s) => s.predicate.sequence)).toEqual([2]);
    expect((await verifyRelease(a.repo, "v1", trustFor(REPO, { now: later(120_000) }))).statement.predicate.policy_bundle.version).toBe("1.0.0");
    // A higher sequence is the way to publish the new content.
    const s3 = await signRelease(b.repo, b.ref, { ...signOptionsFor(b, { keys, sequence: 3, repository: REPO }), now: later(60_000) });
    expect(s3.reused).toBe(false);
  });
});

describe("rollback restores exactly the statement it names", () => {
  const REPO = "registry.example/prod/agent";

  /** Image A signed twice: sequence 1 with a permissive bundle, sequence 2 with a strict one (a policy-only change); then image B at sequence 3. */
  async function sharedImage(flood: boolean): Promise<{ a: ReleaseParts; b: ReleaseParts; target: ReturnType<typeof parseReference>; now: number }> {
    const now = Date.now();
    const reg = `oci:${dir}/rb-${++counter}`;
    const permissiveDir = await policyDir({ "all.cedar": PERMISSIVE });
    const a1 = await makeReleaseParts({ ref: `${reg}:v1`, bundleVersion: "1.0.0-permissive", policies: permissiveDir });
    await signRelease(a1.repo, a1.ref, { ...signOptionsFor(a1, { keys, sequence: 1, repository: REPO }), now: new Date(now) });
    if (flood) {
      // Someone with push rights (no key): a statement referrer of 31 junk envelopes between the two statements.
      const cfg = { mediaType: MediaTypes.empty, digest: await a1.repo.putBlob(EMPTY_JSON), size: EMPTY_JSON.byteLength };
      const m: ImageManifest = { schemaVersion: 2, mediaType: MediaTypes.imageManifest, artifactType: MediaTypes.releaseStatement, config: cfg,
        layers: Array.from({ length: 31 }, (_, i) => ({ mediaType: MediaTypes.dsseEnvelope, digest: sha256Digest(enc(`j${i}`)), size: 10 })), subject: a1.image.descriptor };
      await pushReferrer(a1.repo, encodeManifest(m).bytes, m.mediaType);
    }
    const a2 = await makeReleaseParts({ ref: `${reg}:v1`, bundleVersion: "2.0.0-strict" });
    expect(a2.image.digest).toBe(a1.image.digest);
    await signRelease(a2.repo, a2.ref, { ...signOptionsFor(a2, { keys, sequence: 2, repository: REPO }), now: new Date(now + 1000) });
    const b = await makeReleaseParts({ ref: `${reg}:v3`, agentText: "print('B')\n" });
    await signRelease(b.repo, b.ref, { ...signOptionsFor(b, { keys, sequence: 3, repository: REPO }), now: new Date(now + 2000) });
    return { a: a1, b, target: parseReference(`${reg}:v3`), now };
  }

  it("attack rollback selects the wrong release: v1 and v2 share an image; `rollback --to v1` without --to-sequence is refused listing 1, 2, and --to-sequence restores exactly that statement's lock and bundle", async () => {
    const { a, b, target, now } = await sharedImage(false);
    const base = { older: { repo: a.repo, target: a.image.digest }, target: { repo: b.repo, ref: target }, keys: [keys.privateKey], repository: REPO };
    const ambiguous = await rollbackRelease({ ...base, sequence: 4, now: new Date(now + 3000) }).catch((x: unknown) => x);
    expect(ambiguous).toMatchObject({ code: "USAGE", exitCode: 2 });
    expect((ambiguous as Error).message).toContain("sequences 1, 2");
    expect(await findStatements(b.repo, a.image.digest, trustFor(REPO, { now: new Date(now + 3000) })).then((r) => r.valid.map((s) => s.predicate.sequence).sort())).toEqual([1, 2]);
    const strict = await rollbackRelease({ ...base, toSequence: 2, sequence: 4, now: new Date(now + 3000) });
    expect([strict.older.statement.predicate.sequence, strict.signed.statement.predicate.sequence, strict.signed.statement.predicate.policy_bundle.version]).toEqual([2, 4, "2.0.0-strict"]);
    const permissive = await rollbackRelease({ ...base, toSequence: 1, sequence: 5, now: new Date(now + 4000) });
    expect([permissive.signed.statement.predicate.sequence, permissive.signed.statement.predicate.policy_bundle.version]).toEqual([5, "1.0.0-permissive"]);
    expect(permissive.signed.statement.predicate.lock.digest).toBe(sha256Digest(a.lockBytes));
    const missing = await rollbackRelease({ ...base, toSequence: 7, sequence: 6, now: new Date(now + 5000) }).catch((x: unknown) => x);
    expect(missing).toMatchObject({ code: "USAGE" });
  });

  it("attack rollback + flood: with the newer statement of the image hidden by junk, `--to-sequence 2` is refused, never silently replaced by sequence 1's content", async () => {
    const { a, b, target, now } = await sharedImage(true);
    const r = await rollbackRelease({ older: { repo: a.repo, target: a.image.digest }, target: { repo: b.repo, ref: target }, keys: [keys.privateKey], repository: REPO, toSequence: 2, sequence: 4, now: new Date(now + 3000) })
      .then((x) => x.signed.statement.predicate.policy_bundle.version, (x: unknown) => (x as { code?: string }).code);
    // Either the statement at sequence 2 is found (strict comes back) or the rollback is refused: never the permissive bundle.
    expect(["2.0.0-strict", "USAGE"]).toContain(r);
  });
});

describe("sign reads attachments with bounds and checks what it calls attached", () => {
  const REPO = "registry.example/prod/agent";

  it("attack listed-but-missing attachment: a lock manifest listed while its blob is gone is re-attached by sign, so the release verifies", async () => {
    const parts = await makeReleaseParts({ ref: `oci:${dir}/att-${++counter}:v1` });
    const first = await signRelease(parts.repo, parts.ref, signOptionsFor(parts, { keys, sequence: 1, repository: REPO }));
    await unlink(join(dir, `att-${counter}`, "blobs", "sha256", first.lock.digest.slice("sha256:".length)));
    await expectVerificationCode(verifyRelease(parts.repo, "v1", trustFor(REPO)), "LOCK_MISSING");
    const again = await signRelease(parts.repo, parts.ref, signOptionsFor(parts, { keys, sequence: 1, repository: REPO }));
    expect(again.lock.attached).toBe(true);
    expect((await verifyRelease(parts.repo, "v1", trustFor(REPO))).lock.blob).toBe(first.lock.digest);
  });

  it("attack endless data (sign side): 40 junk lock attachments are read up to the per-subject bound, never all", async () => {
    const parts = await makeReleaseParts({ ref: `oci:${dir}/att-${++counter}:v1` });
    for (let i = 0; i < 40; i++) await attachFile(parts.repo, parts.image.descriptor, { name: "autonomy.lock.json", data: enc(`junk lock ${i}`) }, { artifactType: MediaTypes.lock });
    const r = await signRelease(parts.repo, parts.ref, signOptionsFor(parts, { keys, sequence: 1, repository: REPO }));
    expect(r.unnamed.length).toBeLessThanOrEqual(32);
    expect((await verifyRelease(parts.repo, "v1", trustFor(REPO))).statement.digest).toBe(r.statement.digest);
  });
});

describe("attack flood on the node: junk statement referrers cannot make activation choose an older release", () => {
  it("attack flood-downgrade on activate: release 1's public envelope + 31 junk DSSE layers in one referrer listed first; the node still activates sequence 2, and a flood past 32 statement referrers refuses (STATEMENT_CANDIDATES_EXCEEDED, exit 4)", async () => {
    const layout = join(dir, `activate-flood-${++counter}`);
    const parts = await makeReleaseParts({ ref: `oci:${layout}:v1` });
    const now = Date.now();
    const s1 = await signRelease(parts.repo, parts.ref, signOptionsFor(parts, { keys, sequence: 1, now: new Date(now - 2000) }));
    await signRelease(parts.repo, parts.ref, signOptionsFor(parts, { keys, sequence: 2, now: new Date(now - 1000) }));
    const env1 = { mediaType: MediaTypes.dsseEnvelope, digest: s1.statement.envelope, size: (await parts.repo.getBlob(s1.statement.envelope)).byteLength };
    const junk = await Promise.all(Array.from({ length: 31 }, async (_, i) => { const b = enc(`junk ${counter} ${i}`); return { mediaType: MediaTypes.dsseEnvelope, digest: await parts.repo.putBlob(b), size: b.byteLength }; }));
    const flood = await pushJunkReferrer(parts.repo, parts.image.descriptor, MediaTypes.releaseStatement, [env1, ...junk]);
    const indexPath = join(layout, "index.json");
    const idx = JSON.parse(await readFile(indexPath, "utf8")) as { manifests: { digest: string }[] };
    idx.manifests.sort((a, b) => (a.digest === flood ? -1 : b.digest === flood ? 1 : 0));
    await writeFile(indexPath, JSON.stringify(idx));
    const stateRoot = join(dir, `node-${counter}`);
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: repositoryName(parts.ref) });
    const r = await activateRelease({ ref: parts.ref, stateRoot });
    expect(r.verification.statement.predicate.sequence).toBe(2);

    for (const [i, l] of junk.slice(0, 31).entries()) await pushJunkReferrer(parts.repo, parts.image.descriptor, MediaTypes.releaseStatement, [{ ...l, annotations: { n: String(i) } }]);
    const nodeB = join(dir, `node-b-${counter}`);
    await setTrustRoot(nodeB, { keys: [keys.publicPem], repository: repositoryName(parts.ref) });
    const e = await expectVerificationCode(activateRelease({ ref: parts.ref, stateRoot: nodeB }), "STATEMENT_CANDIDATES_EXCEEDED");
    expect(e.details).toMatchObject({ referrers: 34, bound: 32 });
  });
});

describe("attack: registry text forging terminal output", () => {
  it("attack ANSI/bidi forgery: a manifest whose mediaType carries ESC[2K, CR and U+202E cannot print a forged ✓ line — verify's text and stderr show it escaped", async () => {
    const layout = join(dir, `ansi-${++counter}`);
    await makeRelease({ ref: `oci:${layout}:v1`, keys });
    const forged = "\u001b[2K\r\u001b[32m  ✓ statement: sequence 99 (signed)\u001b[0m\u202e";
    const evil = enc(JSON.stringify({ schemaVersion: 2, mediaType: forged, layers: [] }));
    const repo = new LayoutRepository(layout);
    const d = await repo.putBlob(evil);
    const indexPath = join(layout, "index.json");
    const idx = JSON.parse(await readFile(indexPath, "utf8")) as { manifests: unknown[] };
    idx.manifests.push({ mediaType: MediaTypes.imageManifest, digest: d, size: evil.byteLength });
    await writeFile(indexPath, JSON.stringify(idx));
    const r = await runCli(["verify", `oci:${layout}:v1`, "--key", pubPath, "--repository", `oci:${layout}`]);
    expect(r.code, describeRun(r)).toBe(0);
    for (const out of [r.stdout, r.stderr]) {
      for (const c of ["\u001b", "\r", "\u202e"]) expect(out).not.toContain(c);
      expect(out).not.toMatch(/^\s*✓ statement: sequence 99/m);
    }
    // The skip is still reported: the bad entry on its own, with its (escaped, quoted) media type.
    expect(r.stdout).toMatch(/index\.json entry skipped: OCI_MANIFEST_INVALID/);

    // The same text in an error message (stderr) is escaped too: nothing valid left → exit 4.
    await writeFile(indexPath, JSON.stringify({ ...idx, manifests: [...idx.manifests, { mediaType: MediaTypes.imageManifest, digest: d, size: evil.byteLength }] }));
    const f = await runCli(["verify", `oci:${layout}:v1`, "--key", pubPath, "--repository", "elsewhere.example/agent"]);
    expect(f.code, describeRun(f)).toBe(4);
    for (const c of ["\u001b", "\r", "\u202e"]) expect(f.stderr).not.toContain(c);
  });
});
