import { AutonomyError, ExitCodes } from "../lib/index.js";

/**
 * Every code a {@link PkiError} can carry; docs/errors.md lists each (a test
 * keeps them in step). `CERT_UNREADABLE` is shared on purpose with the edge
 * daemon's EdgeError: `edged precheck` reports the same condition with the same code.
 */
export const PKI_ERROR_CODES = [
  "CERT_UNREADABLE",
  "CERT_KEY_MISMATCH",
  "CA_EXISTS",
  "CA_UNREADABLE",
  "CERT_NAME_INVALID",
  "CERT_VALIDITY_INVALID",
  "CERT_KEY_INSECURE",
] as const;
export type PkiErrorCode = (typeof PKI_ERROR_CODES)[number];

/** Codes also carried by another domain's error (documented once, under that domain). */
export const PKI_SHARED_CODES: readonly PkiErrorCode[] = ["CERT_UNREADABLE", "CERT_KEY_INSECURE"];

const HINTS: Readonly<Record<PkiErrorCode, string>> = {
  CERT_UNREADABLE: "check the file named in the message; issue a new certificate with `autonomy cert issue --ca DIR --name NODE`",
  CERT_KEY_MISMATCH: "the private key belongs to another certificate: point key_file at the key written with this certificate, or issue a new pair",
  CA_EXISTS: "a fleet CA already exists there; replacing it makes every issued certificate untrusted — pass --force only if that is what you want",
  CA_UNREADABLE: "point --ca at the directory `autonomy cert ca init --out DIR` wrote (ca.crt and ca.key)",
  CERT_NAME_INVALID: "a node name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit; a SAN is an IP address or a DNS name",
  CERT_KEY_INSECURE: "a private key must be readable by its owner only: chmod 600 the file named in the message (and check who else could have copied it)",
  CERT_VALIDITY_INVALID: "choose --days between 1 and the CA's remaining lifetime (a certificate cannot outlive its CA)",
};

/** A fleet-certificate failure: what is wrong (message), what to do (hint). */
export class PkiError extends AutonomyError<PkiErrorCode> {
  constructor(code: PkiErrorCode, message: string, opts: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, {
      hint: opts.hint ?? HINTS[code],
      exitCode: ExitCodes.failure,
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
      ...(opts.details === undefined ? {} : { details: opts.details }),
    });
  }
}
