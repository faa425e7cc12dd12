import type { KeyObject } from "node:crypto";
import { MediaTypes, listReferrers, repositoryName } from "../oci/index.js";
import type { OciRepository, Reference } from "../oci/index.js";
import { signSubject } from "./signatures.js";

export interface SignReleaseOptions {
  key: KeyObject;
  now: Date;
  /** Also sign the lock and policy bundle attached to the artifact (default true). */
  attachments: boolean;
  /** Release sequence, signed into the artifact's signature; nodes refuse to go backwards. */
  sequence?: number;
  /** Marks an intentional rollback to an older sequence (the operator's explicit, signed consent). */
  rollback?: boolean;
}

/** Signed annotation names carried in the artifact signature's payload. */
export const RELEASE_SEQUENCE_KEY = "autonomy.release-sequence";
export const ROLLBACK_KEY = "autonomy.rollback";

function releaseAnnotations(opts: SignReleaseOptions): Record<string, string> {
  const a: Record<string, string> = {};
  if (opts.sequence !== undefined) a[RELEASE_SEQUENCE_KEY] = String(opts.sequence);
  if (opts.rollback) a[ROLLBACK_KEY] = "true";
  return a;
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
  const s = await signSubject(repo, subject, { ...base, annotations: releaseAnnotations(opts), ...(subjectTag !== undefined ? { subjectTag } : {}) });
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
