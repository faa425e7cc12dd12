import { mkdir, rm, writeFile, readFile, readdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createPrivateKey, createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { createLock, serializeLock } from "../lock/index.js";
import { MediaTypes, attachFile, buildImage, copyArtifact, formatReference, openRepository, parseReference, listReferrers, repositoryName } from "../oci/index.js";
import type { OciRepository, Reference, RepositoryOptions } from "../oci/index.js";
import { buildBundle } from "../policy/index.js";
import { generateKeyPair, writeKeyPair } from "../sign/index.js";
import { DEFAULT_CHANNEL, releaseRepository, signRelease, trustedKeys, verifyRelease } from "../supplychain/index.js";
import type { ReleaseTrust, SignReleaseOptions } from "../supplychain/index.js";
import { writeFileAtomic } from "../lib/index.js";
import { enforcementSteps } from "./enforcement.js";
import { nodeDrills } from "./node-drills.js";
import { expectRefusal, recorder } from "./steps.js";
import type { QuickstartStep, Record_ } from "./steps.js";

export type { QuickstartStep } from "./steps.js";

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

export interface QuickstartResult {
  ok: boolean;
  ref: string;
  digest: string;
  fingerprint: string;
  stateRoot: string;
  steps: QuickstartStep[];
}

/** The release the tutorial ships; the node drills offer an older one (sequence 1) and roll back to it as sequence 3. */
const SEQUENCE = 2;

interface Ctx {
  opts: QuickstartOptions;
  dir: string;
  record: Record_;
  refOf: (tag: string, repo?: string) => Reference;
  open: (r: Reference) => OciRepository;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/**
 * Tutorial 01 end to end: keys → agent image → policy bundle → lock → attach →
 * sign → verify → four tamper drills that must each be refused (exit 4) →
 * trust root and activation on a node → an allowed tool call runs and a
 * forbidden one is refused, over HTTP and over MCP → the node drills (rollback
 * replay and mix-and-match refused, a rollback published as a new release
 * accepted). Every step uses the same library calls as the CLI commands.
 */
export async function runTutorial01(opts: QuickstartOptions): Promise<QuickstartResult> {
  const dir = resolve(opts.dir);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const steps: QuickstartStep[] = [];
  const record = recorder(steps, opts.log);
  const keyPrefix = join(dir, "keys", "release");
  await writeKeyPair(keyPrefix, {});
  const ctx: Ctx = {
    opts, dir, record,
    refOf: (tag, repo = "agent") => parseReference(opts.registry ? `${opts.registry}/quickstart/${repo}:${tag}` : `oci:${join(dir, "oci", repo)}:${tag}`),
    open: (r) => openRepository(r, opts.registryOptions ?? {}),
    privateKey: createPrivateKey(await readFile(`${keyPrefix}.key`)),
    publicKey: createPublicKey(await readFile(`${keyPrefix}.pub`)),
  };
  record("keys", `ECDSA P-256 pair at ${keyPrefix}.key / .pub (demo key, unencrypted)`);
  const release = await publishRelease(ctx);
  await tamperDrills(ctx, release.bundle, release.lockBytes);
  const repositoryOptions = opts.registryOptions ?? {};
  const stateRoot = await enforcementSteps({ dir, ref: ctx.refOf("v1"), trust: { publicPem: ctx.publicKey.export({ type: "spki", format: "pem" }).toString(), repository: identityOf(ctx) }, repositoryOptions }, record);
  await nodeDrills({
    dir, examplesDir: opts.examplesDir, stateRoot, record, refOf: ctx.refOf, open: ctx.open, repositoryOptions,
    privateKey: ctx.privateKey, repository: identityOf(ctx), current: { ref: ctx.refOf("v1"), sequence: SEQUENCE, envelope: release.envelope },
  });
  return { ok: steps.every((s) => s.ok), ref: formatReference(ctx.refOf("v1")), digest: release.digest, fingerprint: release.fingerprint, stateRoot, steps };
}

/** The release's signed identity: the "agent" repository (copies elsewhere keep it). */
function identityOf(ctx: Ctx): string {
  const ref = ctx.refOf("v1");
  return releaseRepository(ref) ?? repositoryName(ref);
}

function signOptions(ctx: Ctx, sequence: number, lock: Uint8Array, bundle: Uint8Array): SignReleaseOptions {
  return { keys: [ctx.privateKey], now: new Date(), sequence, repository: identityOf(ctx), lock, bundle: { bytes: bundle, name: "quickstart-policy", version: "1.0.0" } };
}

function trustOf(ctx: Ctx): ReleaseTrust {
  return { trusted: trustedKeys([ctx.publicKey]), threshold: 1, channel: DEFAULT_CHANNEL, repository: identityOf(ctx), now: new Date() };
}

/** The publisher's side: image, bundle, lock, attachments, signatures, verification. */
async function publishRelease(ctx: Ctx): Promise<{ digest: string; fingerprint: string; bundle: Buffer; lockBytes: Uint8Array; envelope: string }> {
  const { record, opts, dir } = ctx;
  const ref = ctx.refOf("v1");
  const repo = ctx.open(ref);
  const agentFiles = (await readdir(join(opts.examplesDir, "agent"))).sort().map((f) => join(opts.examplesDir, "agent", f));
  const image = await buildImage(repo, agentFiles, { tag: "v1", entrypoint: ["python3", "/agent/agent.py"] });
  record("agent image", `${formatReference(ref)} -> ${image.digest}`);

  const built = await buildBundle(join(opts.examplesDir, "policies"), { name: "quickstart-policy", version: "1.0.0", runtimeVersion: ">=0.1.0 <1.0.0" });
  const bundlePath = join(dir, "policy-bundle.tar.gz");
  await writeFileAtomic(bundlePath, built.bytes);
  record("policy bundle", `${bundlePath}: ${Object.keys(built.manifest.files).join(", ")} -> ${built.digest}`);

  const lock = await createLock({ agentImageRef: formatReference(ref), agentDigest: image.digest, policyBundleRef: "quickstart-policy:1.0.0", policyBundleDigest: built.digest });
  const lockBytes = new TextEncoder().encode(serializeLock(lock));
  await writeFileAtomic(join(dir, "autonomy.lock.json"), lockBytes);
  record("lock", `behavioral_fingerprint ${lock.behavioral_fingerprint}`);

  await attachFile(repo, image.descriptor, { name: "autonomy.lock.json", data: lockBytes }, { artifactType: MediaTypes.lock, subjectTag: "v1" });
  await attachFile(repo, image.descriptor, { name: "policy-bundle.tar.gz", data: built.bytes }, { artifactType: MediaTypes.policyBundle, subjectTag: "v1" });
  const refs = await listReferrers(repo, image.digest);
  record("attach", `lock and policy bundle attached as referrers (${refs.length} found via ${refs[0]?.source ?? "-"})`);

  const signed = await signRelease(repo, ref, signOptions(ctx, SEQUENCE, lockBytes, built.bytes));
  record("sign", `release statement ${signed.statement.digest} (sequence ${SEQUENCE}, naming the lock and the policy bundle) and ${signed.signatures.length} simple-signing signature(s)`);

  const report = await verifyRelease(repo, "v1", { ...trustOf(ctx), tag: "v1" });
  record("verify", `all ${report.steps.length} checks passed: ${report.steps.map((s) => s.step).join(", ")}`);
  return { digest: image.digest, fingerprint: lock.behavioral_fingerprint, bundle: built.bytes, lockBytes, envelope: signed.statement.envelope };
}

/** Each drill copies the good release, breaks one thing, and expects verification to refuse it. */
async function tamperDrills(ctx: Ctx, bundle: Buffer, lockBytes: Uint8Array): Promise<void> {
  const { record } = ctx;
  const good = ctx.open(ctx.refOf("v1"));
  const trust = { ...trustOf(ctx), tag: "v1" };

  // Drill 1: a replayed bundle and lock attached by someone without the key: no statement names them.
  const d1Ref = ctx.refOf("v1", "drill-bundle");
  const d1 = ctx.open(d1Ref);
  const c1 = await copyArtifact(good, "v1", d1, "v1", { referrers: false });
  const subject = await d1.resolve(c1.digest);
  const old = Buffer.concat([bundle, Buffer.from("not the bundle the lock names")]);
  await attachFile(d1, subject, { name: "autonomy.lock.json", data: lockBytes }, { artifactType: MediaTypes.lock, subjectTag: "v1" });
  await attachFile(d1, subject, { name: "policy-bundle.tar.gz", data: old }, { artifactType: MediaTypes.policyBundle, subjectTag: "v1" });
  await expectRefusal("tamper drill: replayed policy bundle", verifyRelease(d1, "v1", trust), record);

  // Drill 2: the tag moved to other content, which nobody trusted signed.
  const d2 = ctx.open(ctx.refOf("v1", "drill-image"));
  await copyArtifact(good, "v1", d2, "v1", { referrers: true });
  await buildImage(d2, [join(ctx.opts.examplesDir, "policies", "echo_allow.cedar")], { tag: "v1" });
  await expectRefusal("tamper drill: replaced agent image", verifyRelease(d2, "v1", trust), record);

  // Drill 3: a signature from a key the node does not trust.
  const attacker = generateKeyPair({});
  const d3Ref = ctx.refOf("v1", "drill-key");
  const d3 = ctx.open(d3Ref);
  await copyArtifact(good, "v1", d3, "v1", { referrers: false });
  await signRelease(d3, d3Ref, { ...signOptions(ctx, 99, lockBytes, bundle), keys: [createPrivateKey(attacker.privatePem)] });
  await expectRefusal("tamper drill: untrusted signer", verifyRelease(d3, "v1", trust), record);

  // Drill 4 (image layout only: a registry's storage is not ours to corrupt): a layer altered at rest.
  const d4Ref = ctx.refOf("v1", "drill-blob");
  if (d4Ref.kind !== "layout") return;
  const d4 = ctx.open(d4Ref);
  const c4 = await copyArtifact(good, "v1", d4, "v1", { referrers: true });
  const m4 = JSON.parse(new TextDecoder().decode((await d4.getManifest(c4.digest)).bytes)) as { layers: { digest: string }[] };
  await writeFile(join(d4Ref.dir, "blobs", "sha256", (m4.layers[0]?.digest ?? "").slice(7)), "rm -rf / # altered at rest\n");
  await expectRefusal("tamper drill: layer altered at rest", verifyRelease(d4, "v1", trust), record);
}
