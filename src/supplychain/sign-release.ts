import type { KeyObject } from "node:crypto";
import { MediaTypes, listReferrers, repositoryName } from "../oci/index.js";
import type { OciRepository, Reference } from "../oci/index.js";
import { signSubject } from "./signatures.js";

export interface SignReleaseOptions {
  key: KeyObject;
  now: Date;
  /** Also sign the lock and policy bundle attached to the artifact (default true). */
  attachments: boolean;
}

export interface SignedItem {
  what: "artifact" | "lock" | "policy bundle";
  subject: string;
  signature: string;
  signedAt: string;
}

/**
 * Signs an artifact and, by default, every lock and policy bundle attached to
 * it, so `verify --require-lock --require-policy` can check the whole release.
 */
export async function signRelease(repo: OciRepository, ref: Reference, target: string, opts: SignReleaseOptions): Promise<SignedItem[]> {
  const subject = await repo.resolve(target);
  const dockerReference = repositoryName(ref);
  const base = { key: opts.key, dockerReference, signedAt: opts.now };
  const subjectTag = ref.digest === undefined ? ref.tag : undefined;
  const out: SignedItem[] = [];
  const s = await signSubject(repo, subject, { ...base, ...(subjectTag !== undefined ? { subjectTag } : {}) });
  out.push({ what: "artifact", subject: subject.digest, signature: s.digest, signedAt: s.signedAt });
  if (!opts.attachments) return out;
  for (const [type, what] of [[MediaTypes.lock, "lock"], [MediaTypes.policyBundle, "policy bundle"]] as const) {
    for (const r of await listReferrers(repo, subject.digest, type, { includeFallbackTag: true })) {
      const sig = await signSubject(repo, { mediaType: r.mediaType, digest: r.digest, size: r.size }, base);
      out.push({ what, subject: r.digest, signature: sig.digest, signedAt: sig.signedAt });
    }
  }
  return out;
}
