import { AutonomyError, ExitCodes } from "../lib/index.js";

/** Every code a {@link SignError} can carry: problems with keys or with building/reading a payload. */
export const SIGN_ERROR_CODES = [
  "KEY_UNREADABLE",
  "KEY_PASSWORD_REQUIRED",
  "KEY_PASSWORD_WRONG",
  "KEY_NOT_P256",
  "KEY_EXISTS",
  "PAYLOAD_INVALID",
] as const;

/** A stable code from {@link SIGN_ERROR_CODES}. */
export type SignErrorCode = (typeof SIGN_ERROR_CODES)[number];

/**
 * Every code a {@link VerificationError} can carry. The list grows here, in
 * this file, as pipelines add checks (the release/OCI verification codes
 * below), so the whole catalogue stays in one place with a default hint each.
 */
export const VERIFICATION_ERROR_CODES = [
  // Release verification (src/supplychain): attachments and the digests they pin.
  "ARTIFACT_DIGEST_MISMATCH",
  "POLICY_DIGEST_MISMATCH",
  "BLOB_DIGEST_MISMATCH",
  "ARTIFACT_INVALID",
  "LOCK_MISSING",
  "POLICY_MISSING",
  // Release statements (DSSE + in-toto Statement v1).
  "STATEMENT_INVALID",
  "STATEMENT_MISSING",
  "STATEMENT_EQUIVOCATION",
  "STATEMENT_LOCK_MISMATCH",
  "STATEMENT_CANDIDATES_EXCEEDED",
  "TAG_MOVED",
] as const;

/** A stable code from {@link VERIFICATION_ERROR_CODES}. */
export type VerificationErrorCode = (typeof VERIFICATION_ERROR_CODES)[number];

const SIGN_HINTS: Readonly<Record<SignErrorCode, string>> = {
  KEY_UNREADABLE: "Check the key path and permissions; keys must be PEM (PKCS#8 private, SPKI public), e.g. from `autonomy keys generate`.",
  KEY_PASSWORD_REQUIRED: "The private key is encrypted: set AUTONOMY_KEY_PASSWORD to its password.",
  KEY_PASSWORD_WRONG: "Check AUTONOMY_KEY_PASSWORD: it does not decrypt this key.",
  KEY_NOT_P256: "Only ECDSA P-256 keys are supported; generate one with `autonomy keys generate`.",
  KEY_EXISTS: "Choose another output prefix, or pass --force to overwrite the existing key pair.",
  PAYLOAD_INVALID: "The signed payload is not a cosign simple-signing payload; re-sign the artifact with `autonomy sign`.",
};

const VERIFICATION_HINTS: Readonly<Record<VerificationErrorCode, string>> = {
  ARTIFACT_DIGEST_MISMATCH: "Do not activate it: the artifact is not the one the lock pins. Re-create the lock for the intended image.",
  POLICY_DIGEST_MISMATCH: "Do not activate it: the policy bundle is not the one the lock names. Attach the right bundle or re-create the lock.",
  BLOB_DIGEST_MISMATCH: "Do not activate it: content was tampered with or truncated. Re-copy it from a trusted source.",
  ARTIFACT_INVALID: "Do not activate it: the artifact's manifest tree is incomplete or malformed in this store. Re-copy the release from a trusted source (`autonomy oci copy` copies every blob and referrer).",
  LOCK_MISSING: "Attach an activation lock to the artifact (`autonomy oci attach`) and sign it.",
  POLICY_MISSING: "Attach a policy bundle to the artifact (`autonomy oci attach`) and sign it.",
  STATEMENT_INVALID: "The release statement is not well-formed; re-sign the release with `autonomy sign`.",
  STATEMENT_MISSING: "No release statement valid for these keys, this channel and repository is attached; every candidate is listed with the reason it was skipped. Sign the release with `autonomy sign`, or check --key, --channel and --repository.",
  STATEMENT_EQUIVOCATION: "Two different statements signed with the release key claim the same sequence: do not activate. Find out who signed the second one (key compromise?) and publish a new release with a higher sequence.",
  STATEMENT_LOCK_MISMATCH: "Do not activate it: the lock is not the one the release statement names. Re-sign the release naming the intended lock.",
  STATEMENT_CANDIDATES_EXCEEDED: "Someone attached more statement candidates than are read, so a newer release could be hidden among them: nothing is activated. Remove the junk referrers (or `.att` layers) from the registry, or copy only the release's own referrers, then verify again.",
  TAG_MOVED: "The tag was moved to other content while signing; nothing was signed for the new content. Check who pushed it, then sign again (by digest to be sure).",
};

interface ErrorOpts {
  cause?: unknown;
  details?: Record<string, unknown>;
}

/**
 * A key could not be generated, written or loaded, or a payload could not be
 * built or read. Never carries key material or passwords.
 */
export class SignError extends AutonomyError<SignErrorCode> {
  constructor(code: SignErrorCode, message: string, opts: ErrorOpts = {}) {
    super(code, message, { hint: SIGN_HINTS[code], exitCode: ExitCodes.failure, ...opts });
  }
}

/**
 * The evidence does not hold: no valid release statement, two statements at
 * one sequence, a moved tag, or content that does not match the digest that
 * pins it. Always exit 4. The hint defaults to the code's catalogue
 * entry; a caller that knows more may pass its own.
 *
 * ### Examples
 * ```ts
 * throw new VerificationError("STATEMENT_MISSING", "no valid release statement for sha256:…")
 * throw new VerificationError("LOCK_MISSING", "no lock on sha256:…", "attach one with `autonomy oci attach`", { details })
 * ```
 */
export class VerificationError extends AutonomyError<VerificationErrorCode> {
  constructor(code: VerificationErrorCode, message: string, opts?: ErrorOpts);
  constructor(code: VerificationErrorCode, message: string, hint: string, opts?: ErrorOpts);
  constructor(code: VerificationErrorCode, message: string, hintOrOpts?: string | ErrorOpts, maybeOpts?: ErrorOpts) {
    const [hint, opts] = typeof hintOrOpts === "string" ? [hintOrOpts, maybeOpts] : [VERIFICATION_HINTS[code], hintOrOpts];
    super(code, message, { hint, exitCode: ExitCodes.verification, ...opts });
  }
}
