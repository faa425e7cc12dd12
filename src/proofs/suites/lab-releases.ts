/**
 * Signed releases for the recovery suites (VAL09–VAL11): a (base, candidate,
 * rollback) trio per channel, signed in memory with a key made for the run.
 * The rollback release is the base's content re-signed at a sequence above
 * the candidate's (a node refuses a lower sequence: rollback-replay
 * protection), as `autonomy release rollback --to … --sequence N` makes it.
 * The virtual devices verify each statement against the run's public key
 * (src/fleetsim verify); the lock and bundle digests are not fetched by them
 * (docs/lab-fleet.md), so they are digests of labelled bytes here.
 */
import { createPrivateKey, createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { Envelope } from "../../cpapi/index.js";
import type { CpClient, Release } from "../../cpapi/index.js";
import type { FleetTrust } from "../../fleetsim/index.js";
import { sha256Digest } from "../../lib/index.js";
import { generateKeyPair } from "../../sign/index.js";
import { signStatement, trustedKeys } from "../../supplychain/index.js";

export const LAB_CHANNEL = "stable";
export const LAB_REPOSITORY = "registry.lab.invalid/agent";
const DAY_MS = 86_400_000;

export interface Trio {
  base: Release;
  candidate: Release;
  rollback: Release;
}

/** What one release's content is: the bytes its digests stand for. */
interface Content {
  label: string;
}

export class LabSigner {
  readonly #key: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicPem: string;
  readonly trust: FleetTrust;

  constructor() {
    const k = generateKeyPair({});
    this.#key = createPrivateKey(k.privatePem);
    this.publicKey = createPublicKey(k.publicPem);
    this.publicPem = k.publicPem;
    this.trust = { trusted: trustedKeys([this.publicKey]), threshold: 1, repository: LAB_REPOSITORY };
  }

  /** The publish body of `content` signed at `sequence`. */
  body(content: Content, sequence: number, now = Date.now()): { statement: Envelope; image: string; channel: string; notes: string } {
    const image = sha256Digest(`${content.label}:image`);
    const predicate = {
      sequence, channel: LAB_CHANNEL, repository: LAB_REPOSITORY,
      image: { digest: image, mediaType: "application/vnd.oci.image.manifest.v1+json" },
      lock: { digest: sha256Digest(`${content.label}:lock`), size: 512, behavioral_fingerprint: `blake3:${sha256Digest(`${content.label}:fp`).slice(7)}` },
      policy_bundle: { digest: sha256Digest(`${content.label}:bundle`), size: 2048, name: "lab-policy", version: "1.0.0" },
      // Milliseconds kept: a rollback target signed after the candidate is issued after it (plan creation and nodes check it).
      issued_at: new Date(now - 60_000).toISOString(),
      expires_at: new Date(now + DAY_MS).toISOString(),
    };
    const { envelope } = signStatement(predicate, [this.#key]);
    // The wire schema is the same DSSE shape, open to extra fields: parse it as the client will send it.
    return { statement: Envelope.parse(envelope), image: `${LAB_REPOSITORY}@${image}`, channel: LAB_CHANNEL, notes: `${content.label} at sequence ${sequence}` };
  }

  async publish(client: CpClient, label: string, sequence: number, opts: { standby?: boolean } = {}): Promise<Release> {
    const b = this.body({ label }, sequence);
    // A standby release is never answered as the channel's latest: it reaches nodes only as a plan's rollback target.
    return client.publishRelease({ ...b, standby: opts.standby === true });
  }

  /** A candidate and its rollback target above `sequence` (the base already published). */
  async nextPair(client: CpClient, sequence: number, candidateLabel: string, baseLabel = "base"): Promise<{ candidate: Release; rollback: Release }> {
    const candidate = await this.publish(client, candidateLabel, sequence + 1);
    const rollback = await this.publish(client, baseLabel, sequence + 2, { standby: true });
    return { candidate, rollback };
  }
}
