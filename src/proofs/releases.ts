/**
 * Real signed releases for the suites: an agent image pushed to an OCI layout
 * in the suite's work directory, a policy bundle built from the package's
 * example policies, a lock pinning both, and a release statement signed with a
 * key generated for the run (DSSE, as `autonomy release sign` makes it).
 * Devices of the fleet simulator verify these statements themselves.
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Envelope } from "../cpapi/index.js";
import { createLock, serializeLock } from "../lock/index.js";
import { formatReference, openRepository, parseReference, pushArtifact } from "../oci/index.js";
import { buildBundle } from "../policy/index.js";
import { generateKeyPair } from "../sign/index.js";
import { signRelease, trustedKeys } from "../supplychain/index.js";
import type { FleetTrust } from "../fleetsim/index.js";

/** The package's example policies (src/proofs/ and dist/proofs/ both sit two levels down). */
const EXAMPLE_POLICIES = fileURLToPath(new URL("../../examples/policies", import.meta.url));

export interface SignedRelease {
  sequence: number;
  /** What POST /v1/releases takes. */
  statement: Envelope;
  image: string;
  channel: string;
}

export interface ReleaseKit {
  /** The signed identity (`oci:<dir>`), what devices expect. */
  repository: string;
  /** The release public key (SPKI PEM) on disk, for `--release-key` / `--trust-key`. */
  publicKeyFile: string;
  trust: FleetTrust;
  /** Builds and signs release `sequence` (its agent text differs per sequence, so each is a distinct image). */
  make(sequence: number, opts?: { channel?: string; agentText?: string }): Promise<SignedRelease>;
  /**
   * The rollback-release model (docs/rollouts.md): the content of release `of` (same image, same lock,
   * same bundle) signed again at `sequence`, above the plan's release, so a node that took the plan's
   * release can still go back. Publish it with `standby: true`.
   */
  resign(of: number, sequence: number): Promise<SignedRelease>;
}

/** A rollout's three releases: what the fleet runs, what the plan installs, and the base re-signed above it (publish as standby). */
export interface ReleaseTrio {
  base: SignedRelease;
  candidate: SignedRelease;
  rollback: SignedRelease;
}

/** Base at `baseSequence`, candidate one above, rollback (the base's content) two above. */
export async function releaseTrio(kit: ReleaseKit, baseSequence = 1): Promise<ReleaseTrio> {
  const base = await kit.make(baseSequence);
  const candidate = await kit.make(baseSequence + 1);
  return { base, candidate, rollback: await kit.resign(baseSequence, baseSequence + 2) };
}

/** A release key and an OCI layout in `dir`; releases are made on demand. */
export async function releaseKit(dir: string): Promise<ReleaseKit> {
  const pair = generateKeyPair({});
  const publicKeyFile = join(dir, "release.pub");
  await writeFile(publicKeyFile, pair.publicPem, { mode: 0o644 });
  const privateKey = createPrivateKey(pair.privatePem);
  const repository = `oci:${join(dir, "reg")}`;
  const bundle = await buildBundle(EXAMPLE_POLICIES, { name: "proof-policy", version: "1.0.0", createdAt: new Date(0) });
  const made = new Map<number, { tag: string; lock: Uint8Array }>();
  const sign = async (tag: string, sequence: number, lock: Uint8Array, channel?: string): Promise<SignedRelease> => {
    const ref = parseReference(`${repository}:${tag}`);
    const repo = openRepository(ref);
    const signed = await signRelease(repo, ref, {
      keys: [privateKey], now: new Date(), sequence, repository, lock, bundle: { bytes: bundle.bytes, name: "proof-policy", version: "1.0.0" }, ...(channel !== undefined ? { channel } : {}),
    });
    const statement = JSON.parse(Buffer.from(await repo.getBlob(signed.statement.envelope)).toString("utf8")) as Envelope;
    return { sequence, statement, image: formatReference(ref), channel: signed.statement.predicate.channel };
  };
  return {
    repository, publicKeyFile,
    trust: { trusted: trustedKeys([createPublicKey(pair.publicPem)]), threshold: 1, repository },
    async make(sequence, opts = {}) {
      const ref = parseReference(`${repository}:v${sequence}`);
      const repo = openRepository(ref);
      const text = opts.agentText ?? `print('proof agent, release ${sequence}')\n`;
      const image = await pushArtifact(repo, [{ name: "agent.py", data: new TextEncoder().encode(text) }], { artifactType: "application/vnd.autonomyops.agent.v1", tag: `v${sequence}` });
      const lock = await createLock({ agentImageRef: formatReference(ref), agentDigest: image.digest, policyBundleRef: "proof-policy:1.0.0", policyBundleDigest: bundle.digest });
      const lockBytes = new TextEncoder().encode(serializeLock(lock));
      made.set(sequence, { tag: `v${sequence}`, lock: lockBytes });
      return sign(`v${sequence}`, sequence, lockBytes, opts.channel);
    },
    async resign(of, sequence) {
      const base = made.get(of);
      if (!base) throw new Error(`release ${of} was not made by this kit`);
      return sign(base.tag, sequence, base.lock);
    },
  };
}
