import { mkdir, rm, writeFile, readFile, readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createPrivateKey, createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { gzipSync } from "node:zlib";
import { create as createTar } from "tar";
import { createLock, serializeLock } from "../lock/index.js";
import { MediaTypes, attachFile, buildImage, copyArtifact, formatReference, openRepository, parseReference, listReferrers } from "../oci/index.js";
import type { OciRepository, Reference, RepositoryOptions } from "../oci/index.js";
import { generateKeyPair, writeKeyPair } from "../sign/index.js";
import { signRelease, verifyRelease } from "../supplychain/index.js";
import { AutonomyError, sha256Digest, writeFileAtomic } from "../lib/index.js";

export interface QuickstartOptions {
  /** Work folder; cleared and recreated. */
  dir: string;
  /** Folder holding examples/ (policies, agent). */
  examplesDir: string;
  /** Registry host[:port] to use instead of a local image layout. */
  registry?: string;
  registryOptions?: RepositoryOptions;
  log?: (line: string) => void;
}

export interface QuickstartStep {
  step: string;
  ok: boolean;
  detail: string;
}

export interface QuickstartResult {
  ok: boolean;
  ref: string;
  digest: string;
  fingerprint: string;
  steps: QuickstartStep[];
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * Tutorial 01 as far as the supply chain goes: keys → agent image → policy
 * bundle → lock → attach → sign → verify, then three tamper drills that must
 * each fail verification with exit code 4. Every step uses the same library
 * functions the CLI commands use.
 */
export async function runTutorial01(opts: QuickstartOptions): Promise<QuickstartResult> {
  const dir = resolve(opts.dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const steps: QuickstartStep[] = [];
  const record = (step: string, detail: string, ok = true): void => {
    steps.push({ step, ok, detail });
    opts.log?.(`${ok ? "✓" : "✗"} ${step}: ${detail}`);
  };
  const refOf = (tag: string, repo = "agent"): Reference =>
    parseReference(opts.registry ? `${opts.registry}/quickstart/${repo}:${tag}` : `oci:${join(dir, "oci", repo)}:${tag}`);
  const open = (ref: Reference): OciRepository => openRepository(ref, opts.registryOptions ?? {});

  const keyPrefix = join(dir, "keys", "release");
  await writeKeyPair(keyPrefix, {});
  const privateKey = createPrivateKey(await readFile(`${keyPrefix}.key`));
  const publicKey = createPublicKey(await readFile(`${keyPrefix}.pub`));
  record("keys", `ECDSA P-256 pair at ${keyPrefix}.key / .pub (demo key, unencrypted)`);

  const ref = refOf("v1");
  const repo = open(ref);
  const agentFiles = (await readdir(join(opts.examplesDir, "agent"))).sort().map((f) => join(opts.examplesDir, "agent", f));
  const image = await buildImage(repo, agentFiles, { tag: "v1", entrypoint: ["python3", "/agent/agent.py"] });
  record("agent image", `${formatReference(ref)} -> ${image.digest}`);

  const bundlePath = join(dir, "policy-bundle.tar.gz");
  const bundle = await packPolicies(join(opts.examplesDir, "policies"));
  await writeFileAtomic(bundlePath, bundle);
  record("policy bundle", `${bundlePath} sha256 ${sha256Digest(bundle)}`);

  const lock = await createLock({
    agentImageRef: formatReference(ref), agentDigest: image.digest,
    policyBundleRef: "quickstart-policy:v1", policyBundleDigest: sha256Digest(bundle),
  });
  const lockPath = join(dir, "autonomy.lock.json");
  await writeFileAtomic(lockPath, serializeLock(lock));
  record("lock", `${lockPath} behavioral_fingerprint ${lock.behavioral_fingerprint}`);

  await attachFile(repo, image.descriptor, { name: "autonomy.lock.json", data: new TextEncoder().encode(serializeLock(lock)) }, { artifactType: MediaTypes.lock, subjectTag: "v1" });
  await attachFile(repo, image.descriptor, { name: "policy-bundle.tar.gz", data: bundle }, { artifactType: MediaTypes.policyBundle, subjectTag: "v1" });
  const refs = await listReferrers(repo, image.digest);
  record("attach", `lock and policy bundle attached as referrers (${refs.length} found via ${refs[0]?.source ?? "-"})`);

  const signed = await signRelease(repo, ref, "v1", { key: privateKey, now: new Date(), attachments: true });
  record("sign", `${signed.length} signatures (artifact, lock, policy bundle), cosign simple-signing`);

  const trust = { key: publicKey, maxAgeMs: 365 * DAY_MS, now: new Date(), requireLock: true, requirePolicy: true, tag: "v1" };
  const report = await verifyRelease(repo, "v1", trust);
  record("verify", `all ${report.steps.length} checks passed: ${report.steps.map((s) => s.step).join(", ")}`);

  await tamperDrills(opts, refOf, open, trust, bundle, new TextEncoder().encode(serializeLock(lock)), privateKey, record);
  return { ok: steps.every((s) => s.ok), ref: formatReference(ref), digest: image.digest, fingerprint: lock.behavioral_fingerprint, steps };
}

type Record_ = (step: string, detail: string, ok?: boolean) => void;

/** Each drill copies the good release, breaks one thing, and expects verification to refuse it. */
async function tamperDrills(opts: QuickstartOptions, refOf: (tag: string, repo?: string) => Reference, open: (r: Reference) => OciRepository,
  trust: Parameters<typeof verifyRelease>[2], bundle: Uint8Array, lockBytes: Uint8Array, trustedKey: KeyObject, record: Record_): Promise<void> {
  const good = open(refOf("v1"));

  // Drill 1: a replayed bundle. The release ships with a different, validly
  // signed bundle (say, last month's) than the one the lock names.
  const d1Ref = refOf("v1", "drill-bundle");
  const d1 = open(d1Ref);
  const c1 = await copyArtifact(good, "v1", d1, "v1", { referrers: false });
  const subject = await d1.resolve(c1.digest);
  const old = gzipSync(Buffer.concat([bundle, Buffer.from("permit(principal, action, resource);")]));
  await attachFile(d1, subject, { name: "autonomy.lock.json", data: lockBytes }, { artifactType: MediaTypes.lock, subjectTag: "v1" });
  await attachFile(d1, subject, { name: "policy-bundle.tar.gz", data: old }, { artifactType: MediaTypes.policyBundle, subjectTag: "v1" });
  await signRelease(d1, d1Ref, "v1", { key: trustedKey, now: new Date(), attachments: true });
  await expectRefusal("tamper drill: replayed policy bundle", verifyRelease(d1, "v1", trust), record);

  const attacker = generateKeyPair({});
  // Drill 2: the artifact re-tagged to different content under the same lock.
  const d2Ref = refOf("v1", "drill-image");
  const d2 = open(d2Ref);
  await copyArtifact(good, "v1", d2, "v1", { referrers: true });
  await buildImage(d2, [join(opts.examplesDir, "policies", "echo_allow.cedar")], { tag: "v1" });
  await expectRefusal("tamper drill: replaced agent image", verifyRelease(d2, "v1", trust), record);

  // Drill 3: a signature from a key the node does not trust.
  const d3 = open(refOf("v1", "drill-key"));
  await copyArtifact(good, "v1", d3, "v1", { referrers: false });
  await signRelease(d3, refOf("v1", "drill-key"), "v1", { key: createPrivateKey(attacker.privatePem), now: new Date(), attachments: false });
  await expectRefusal("tamper drill: untrusted signer", verifyRelease(d3, "v1", { ...trust, requireLock: false, requirePolicy: false }), record);

  // Drill 4 (image layout only: a registry's storage is not ours to corrupt): a layer blob altered at rest.
  const d4Ref = refOf("v1", "drill-blob");
  if (d4Ref.kind !== "layout") return;
  const d4 = open(d4Ref);
  const c4 = await copyArtifact(good, "v1", d4, "v1", { referrers: true });
  const m4 = JSON.parse(new TextDecoder().decode((await d4.getManifest(c4.digest)).bytes)) as { layers: { digest: string }[] };
  const layer = m4.layers[0]?.digest ?? "";
  await writeFile(join(d4Ref.dir, "blobs", "sha256", layer.slice(7)), "rm -rf / # altered at rest\n");
  await expectRefusal("tamper drill: layer altered at rest", verifyRelease(d4, "v1", trust), record);
}

async function expectRefusal(step: string, p: Promise<unknown>, record: Record_): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AutonomyError && e.exitCode === 4) {
      record(step, `refused as it should: ${e.code} (exit 4)`);
      return;
    }
    throw e;
  }
  record(step, "verification PASSED but must have failed", false);
}

/** Packs the example policies as a deterministic .tar.gz (the full bundle format arrives with `autonomy policy build`). */
async function packPolicies(dir: string): Promise<Buffer> {
  const files = (await readdir(dir)).filter((f) => f.endsWith(".cedar")).sort();
  const chunks: Buffer[] = [];
  for await (const c of createTar({ cwd: dir, portable: true, mtime: new Date(0) }, files) as AsyncIterable<Buffer>) chunks.push(c);
  return gzipSync(Buffer.concat(chunks), { level: 9 });
}
