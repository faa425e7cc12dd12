import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { createPrivateKey, createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { createLock, serializeLock } from "../lock/index.js";
import { buildImage, formatReference, openRepository, parseReference, repositoryName } from "../oci/index.js";
import type { OciRepository, Reference } from "../oci/index.js";
import { buildBundle } from "../policy/index.js";
import { writeKeyPair } from "../sign/index.js";
import { releaseRepository, rollbackRelease, signRelease } from "../supplychain/index.js";

/** One signed release of tutorial 02, ready to publish to the control plane. */
export interface FleetRelease {
  /** "release 1", … for messages. */
  label: string;
  ref: Reference;
  sequence: number;
  imageDigest: string;
  lockFingerprint: string;
  policy: string;
  /** The DSSE envelope of the release statement, as JSON (what POST /v1/releases takes). */
  envelope: unknown;
}

/** The publisher's side: one key pair and one image-layout repository (`oci:DIR/oci/agent`) for every release. */
export class Publisher {
  private constructor(
    readonly dir: string,
    readonly keyPrefix: string,
    readonly privateKey: KeyObject,
    readonly publicPem: string,
  ) {}

  static async create(dir: string): Promise<Publisher> {
    const keyPrefix = join(dir, "keys", "release");
    await writeKeyPair(keyPrefix, {});
    const publicPem = await readFile(`${keyPrefix}.pub`, "utf8");
    return new Publisher(dir, keyPrefix, createPrivateKey(await readFile(`${keyPrefix}.key`)), publicPem);
  }

  get publicKey(): KeyObject {
    return createPublicKey(this.publicPem);
  }

  refOf(tag: string): Reference {
    return parseReference(`oci:${join(this.dir, "oci", "agent")}:${tag}`);
  }

  /** The signed identity every release carries and every node's trust root names. */
  get repository(): string {
    const ref = this.refOf("v1");
    return releaseRepository(ref) ?? repositoryName(ref);
  }

  open(ref: Reference): OciRepository {
    return openRepository(ref, {});
  }

  /** Builds the agent image from `agentDir`, the bundle from `policiesDir`, the lock pinning both, and signs them at `sequence`. */
  async release(label: string, tag: string, sequence: number, agentDir: string, policiesDir: string, bundleVersion: string): Promise<FleetRelease> {
    const ref = this.refOf(tag);
    const repo = this.open(ref);
    const files = (await readdir(agentDir)).sort().map((f) => join(agentDir, f));
    const image = await buildImage(repo, files, { tag, entrypoint: ["python3", "/agent/agent.py"] });
    const bundle = await buildBundle(policiesDir, { name: "fleet-policy", version: bundleVersion, runtimeVersion: ">=0.1.0 <1.0.0" });
    const lock = await createLock({ agentImageRef: formatReference(ref), agentDigest: image.digest, policyBundleRef: `fleet-policy:${bundleVersion}`, policyBundleDigest: bundle.digest });
    const signed = await signRelease(repo, ref, {
      keys: [this.privateKey], now: new Date(), sequence, repository: this.repository,
      lock: new TextEncoder().encode(serializeLock(lock)), bundle: { bytes: bundle.bytes, name: "fleet-policy", version: bundleVersion },
    });
    return {
      label, ref, sequence, imageDigest: image.digest, lockFingerprint: lock.behavioral_fingerprint, policy: `fleet-policy@${bundleVersion}`,
      envelope: await envelopeOf(repo, signed.statement.envelope),
    };
  }

  /**
   * The rollback target of a rollout: `older`'s content (image, lock, bundle)
   * re-signed at `sequence`, above the rollout's release — a node never goes
   * below the sequence it runs (`autonomy release rollback --to … --sequence N`).
   */
  async rollbackOf(label: string, older: FleetRelease, tag: string, sequence: number): Promise<FleetRelease> {
    const ref = this.refOf(tag);
    const back = await rollbackRelease({
      older: { repo: this.open(older.ref), target: older.ref.tag ?? "v1" }, target: { repo: this.open(ref), ref },
      keys: [this.privateKey], toSequence: older.sequence, sequence, repository: this.repository, now: new Date(),
    });
    const p = back.signed.statement.predicate;
    return {
      label, ref, sequence, imageDigest: back.signed.digest, lockFingerprint: p.lock.behavioral_fingerprint,
      policy: `${p.policy_bundle.name}@${p.policy_bundle.version}`, envelope: await envelopeOf(this.open(ref), back.signed.statement.envelope),
    };
  }
}

async function envelopeOf(repo: OciRepository, digest: string): Promise<unknown> {
  return JSON.parse(Buffer.from(await repo.getBlob(digest)).toString("utf8")) as unknown;
}
