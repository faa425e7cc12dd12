import { createPrivateKey, createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { mkdtemp, writeFile, cp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLock, serializeLock } from "../../src/lock/index.js";
import { openRepository, parseReference, pushArtifact, repositoryName } from "../../src/oci/index.js";
import type { OciRepository, Reference } from "../../src/oci/index.js";
import { buildBundle } from "../../src/policy/index.js";
import { generateKeyPair } from "../../src/sign/index.js";
import { signRelease } from "../../src/supplychain/index.js";
import type { SignReleaseResult } from "../../src/supplychain/index.js";
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

/** Builds an image, a bundle and a lock for it, and signs the release naming them, with the library calls the CLI uses. */
export async function makeRelease(spec: ReleaseSpec): Promise<MadeRelease> {
  const ref = parseReference(spec.ref);
  const repo = openRepository(ref, { plainHttp: true });
  const tag = ref.tag ?? "latest";
  const agent = await pushArtifact(repo, [{ name: "agent.py", data: new TextEncoder().encode(spec.agentText ?? "print('agent')\n") }], { artifactType: "application/vnd.autonomyops.agent.v1", tag });
  const bundle = await buildBundle(spec.policies ?? EXAMPLE_POLICIES, {
    name: "test-policy", version: spec.bundleVersion ?? "1.0.0", createdAt: new Date(0),
    ...(spec.runtimeVersion !== undefined ? { runtimeVersion: spec.runtimeVersion } : {}),
  });
  const lock = await createLock({ agentImageRef: spec.ref, agentDigest: agent.digest, policyBundleRef: "test-policy:1.0.0", policyBundleDigest: bundle.digest });
  const lockBytes = new TextEncoder().encode(serializeLock(lock));
  const signed = await signRelease(repo, ref, {
    keys: [spec.keys.privateKey], now: spec.now ?? new Date(), sequence: spec.sequence ?? 1,
    repository: spec.repository ?? repositoryName(ref), lock: lockBytes,
    bundle: { bytes: bundle.bytes, name: bundle.manifest.name, version: bundle.manifest.policy_bundle_version },
    ...(spec.channel !== undefined ? { channel: spec.channel } : {}),
  });
  return { ref, repo, digest: agent.digest, bundleDigest: bundle.digest, bundleBytes: bundle.bytes, lockBytes, signed };
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
