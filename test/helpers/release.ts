import { createPrivateKey, createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { mkdtemp, writeFile, cp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLock, serializeLock } from "../../src/lock/index.js";
import { openRepository, parseReference, pushArtifact, repositoryName } from "../../src/oci/index.js";
import type { OciRepository, PushedArtifact, Reference } from "../../src/oci/index.js";
import { buildBundle } from "../../src/policy/index.js";
import type { BuiltBundle } from "../../src/policy/index.js";
import { generateKeyPair } from "../../src/sign/index.js";
import { signRelease } from "../../src/supplychain/index.js";
import type { SignReleaseOptions, SignReleaseResult } from "../../src/supplychain/index.js";
import { EXAMPLE_POLICY_DIR } from "./policies.js";

export const EXAMPLE_POLICIES = EXAMPLE_POLICY_DIR;

export interface TestKeys {
  privateKey: KeyObject;
  publicKey: KeyObject;
  privatePem: string;
  publicPem: string;
}

export function testKeys(): TestKeys {
  const k = generateKeyPair({});
  return { privateKey: createPrivateKey(k.privatePem), publicKey: createPublicKey(k.publicPem), privatePem: k.privatePem, publicPem: k.publicPem };
}

export interface ReleaseSpec {
  /** Where the release goes, e.g. `oci:/tmp/x/store:v1`. */
  ref: string;
  keys: TestKeys;
  /** Release sequence (default 1). */
  sequence?: number;
  /** Signed identity (default: the ref's repository name, `oci:<dir>` for layouts). */
  repository?: string;
  channel?: string;
  /** Policy directory to bundle (default: examples/policies). */
  policies?: string;
  bundleVersion?: string;
  runtimeVersion?: string;
  /** Distinguishes the agent image content between releases. */
  agentText?: string;
  /** Signing time (default now). */
  now?: Date;
}

export interface MadeRelease {
  ref: Reference;
  repo: OciRepository;
  digest: string;
  bundleDigest: string;
  bundleBytes: Buffer;
  lockBytes: Uint8Array;
  signed: SignReleaseResult;
}

/** The unsigned parts of a release: an image pushed under the ref's tag, a bundle and a lock pinning both. */
export interface ReleaseParts {
  ref: Reference;
  repo: OciRepository;
  image: PushedArtifact;
  bundle: BuiltBundle;
  lockBytes: Uint8Array;
}

export async function makeReleaseParts(spec: Omit<ReleaseSpec, "keys" | "sequence" | "repository" | "channel" | "now">): Promise<ReleaseParts> {
  const ref = parseReference(spec.ref);
  const repo = openRepository(ref, { plainHttp: true });
  const tag = ref.tag ?? "latest";
  const image = await pushArtifact(repo, [{ name: "agent.py", data: new TextEncoder().encode(spec.agentText ?? "print('agent')\n") }], { artifactType: "application/vnd.autonomyops.agent.v1", tag });
  const bundle = await buildBundle(spec.policies ?? EXAMPLE_POLICIES, {
    name: "test-policy", version: spec.bundleVersion ?? "1.0.0", createdAt: new Date(0),
    ...(spec.runtimeVersion !== undefined ? { runtimeVersion: spec.runtimeVersion } : {}),
  });
  const lock = await createLock({ agentImageRef: spec.ref, agentDigest: image.digest, policyBundleRef: `test-policy:${bundle.manifest.policy_bundle_version}`, policyBundleDigest: bundle.digest });
  return { ref, repo, image, bundle, lockBytes: new TextEncoder().encode(serializeLock(lock)) };
}

/** signRelease options naming exactly these parts. */
export function signOptionsFor(parts: ReleaseParts, spec: Pick<ReleaseSpec, "keys" | "sequence" | "repository" | "channel" | "now">): SignReleaseOptions {
  return {
    keys: [spec.keys.privateKey], now: spec.now ?? new Date(), sequence: spec.sequence ?? 1,
    repository: spec.repository ?? repositoryName(parts.ref), lock: parts.lockBytes,
    bundle: { bytes: parts.bundle.bytes, name: parts.bundle.manifest.name, version: parts.bundle.manifest.policy_bundle_version },
    ...(spec.channel !== undefined ? { channel: spec.channel } : {}),
  };
}

/** Builds an image, a bundle and a lock for it, and signs the release naming them, with the library calls the CLI uses. */
export async function makeRelease(spec: ReleaseSpec): Promise<MadeRelease> {
  const parts = await makeReleaseParts(spec);
  const signed = await signRelease(parts.repo, parts.ref, signOptionsFor(parts, spec));
  return { ref: parts.ref, repo: parts.repo, digest: parts.image.digest, bundleDigest: parts.bundle.digest, bundleBytes: parts.bundle.bytes, lockBytes: parts.lockBytes, signed };
}

/** A policy directory with the given Cedar text, for tests that need their own rules. */
export async function policyDir(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "policies-"));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return dir;
}

/** A copy of the example policies to modify. */
export async function copyExamplePolicies(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "policies-"));
  await cp(EXAMPLE_POLICIES, dir, { recursive: true });
  return dir;
}
