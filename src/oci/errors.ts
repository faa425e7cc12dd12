import { AutonomyError, ExitCodes } from "../lib/index.js";

/** Every code an {@link OciError} can carry; docs/errors.md lists each (a test keeps them in step). */
export const OCI_ERROR_CODES = [
  "OCI_REFERENCE_INVALID",
  "OCI_NOT_FOUND",
  "OCI_DIGEST_MISMATCH",
  "OCI_SIZE_MISMATCH",
  "OCI_MEDIA_TYPE_UNKNOWN",
  "OCI_MANIFEST_INVALID",
  "OCI_LAYOUT_INVALID",
  "OCI_REGISTRY_UNREACHABLE",
  "OCI_REGISTRY_ERROR",
  "OCI_AUTH_FAILED",
  "OCI_BLOB_TOO_LARGE",
  "OCI_TOO_MANY_REFERRERS",
] as const;
export type OciErrorCode = (typeof OCI_ERROR_CODES)[number];

/** Codes that mean "the content is not what it claims to be": exit 4. */
const VERIFICATION_CODES: ReadonlySet<OciErrorCode> = new Set(["OCI_DIGEST_MISMATCH", "OCI_SIZE_MISMATCH"]);

export class OciError extends AutonomyError<OciErrorCode> {
  constructor(code: OciErrorCode, message: string, hint: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, {
      hint,
      exitCode: VERIFICATION_CODES.has(code) ? ExitCodes.verification : ExitCodes.failure,
      ...opts,
    });
  }
}

/** The referrers of one subject exceed what is read: callers that need every candidate (verification) fail closed on it. */
export function tooManyReferrers(location: string, subject: string, what: string): OciError {
  return new OciError("OCI_TOO_MANY_REFERRERS", `the referrers of ${subject} in ${location} exceed the read bound: ${what}`,
    "remove stale referrers (signatures, statements, attachments) from the registry, or copy only the release's own referrers", { details: { subject } });
}
