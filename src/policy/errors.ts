import { AutonomyError, ExitCodes } from "../lib/index.js";

/** Every code a {@link PolicyError} can carry; docs/errors.md lists each (a test keeps them in step). */
export const POLICY_ERROR_CODES = [
  "BUNDLE_TOO_LARGE",
  "BUNDLE_TOO_MANY_ENTRIES",
  "BUNDLE_NOT_GZIP",
  "BUNDLE_TAR_INVALID",
  "BUNDLE_PATH_UNSAFE",
  "BUNDLE_LINK_FORBIDDEN",
  "BUNDLE_ENTRY_TYPE_FORBIDDEN",
  "BUNDLE_DUPLICATE_ENTRY",
  "BUNDLE_UNLISTED_FILE",
  "BUNDLE_FILE_MISSING",
  "BUNDLE_MANIFEST_INVALID",
  "BUNDLE_DIGEST_MISMATCH",
  "BUNDLE_HASH_MISMATCH",
  "BUNDLE_INCOMPATIBLE",
  "BUNDLE_SOURCE_INVALID",
  "POLICY_COMPILE_FAILED",
  "POLICY_REQUEST_INVALID",
] as const;
export type PolicyErrorCode = (typeof POLICY_ERROR_CODES)[number];

/** Tampered content: exit 4 like every other verification failure. */
const VERIFICATION: ReadonlySet<PolicyErrorCode> = new Set(["BUNDLE_DIGEST_MISMATCH", "BUNDLE_HASH_MISMATCH"]);

const HINTS: Readonly<Record<PolicyErrorCode, string>> = {
  BUNDLE_TOO_LARGE: "the bundle exceeds the size limits (a compression bomb or a mistake); policy bundles are small text files",
  BUNDLE_TOO_MANY_ENTRIES: "the bundle has more entries than allowed; keep policies in a few files",
  BUNDLE_NOT_GZIP: "a policy bundle is a .tar.gz made by `autonomy policy build`",
  BUNDLE_TAR_INVALID: "the archive is truncated or corrupt; rebuild it with `autonomy policy build`",
  BUNDLE_PATH_UNSAFE: "entry names must be plain relative file names (no /, .., absolute paths or control characters); rebuild the bundle",
  BUNDLE_LINK_FORBIDDEN: "bundles may not contain symbolic or hard links; rebuild the bundle from regular files",
  BUNDLE_ENTRY_TYPE_FORBIDDEN: "bundles contain regular files only (no directories, devices or FIFOs); rebuild the bundle",
  BUNDLE_DUPLICATE_ENTRY: "an entry appears twice, so what is read would depend on the reader; rebuild the bundle",
  BUNDLE_UNLISTED_FILE: "every file must be listed in manifest.json with its digest; rebuild with `autonomy policy build`",
  BUNDLE_FILE_MISSING: "manifest.json lists a file the archive lacks; rebuild the bundle",
  BUNDLE_MANIFEST_INVALID: "manifest.json is missing or malformed; rebuild with `autonomy policy build`",
  BUNDLE_DIGEST_MISMATCH: "a file does not match the digest in manifest.json: the bundle was altered; do not load it",
  BUNDLE_HASH_MISMATCH: "bundle_hash does not match the files: the bundle was altered; do not load it",
  BUNDLE_INCOMPATIBLE: "the bundle requires another runtime version; upgrade the runtime or rebuild the bundle with a matching --runtime-version",
  BUNDLE_SOURCE_INVALID: "the policy directory must hold .cedar files with plain names; fix it and build again",
  POLICY_COMPILE_FAILED: "fix the policy text at the reported file and line, then rebuild the bundle",
  POLICY_REQUEST_INVALID: "a decision request needs principal, action, resource and context as documented in docs/policy.md",
};

export class PolicyError extends AutonomyError<PolicyErrorCode> {
  constructor(code: PolicyErrorCode, message: string, opts: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, {
      hint: opts.hint ?? HINTS[code],
      exitCode: VERIFICATION.has(code) ? ExitCodes.verification : ExitCodes.failure,
      ...(opts.cause !== undefined ? { cause: opts.cause } : {}),
      ...(opts.details !== undefined ? { details: opts.details } : {}),
    });
  }
}

/** Re-exported for the policy modules that already import it from here. @internal */
export { messageOf } from "../lib/index.js";
