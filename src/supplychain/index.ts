export { signRelease, RELEASE_SEQUENCE_KEY, ROLLBACK_KEY } from "./sign-release.js";
export type { SignReleaseOptions, SignedItem } from "./sign-release.js";
export { verifyRelease } from "./verify-release.js";
export type { VerifyReleaseOptions, VerifyReleaseReport, VerifyStep, VerifiedAttachment } from "./verify-release.js";
export { verifySubjectSignature } from "./verify-signature.js";
export type { TrustOptions, VerifiedSignature } from "./verify-signature.js";
export { signSubject, collectSignatures, COSIGN_SIGNATURE_ANNOTATION, SIGNED_AT_ANNOTATION } from "./signatures.js";
export type { SignatureCandidate, SignOptions } from "./signatures.js";
export {
  buildStatement, signStatement, openStatement, StatementRejected,
  STATEMENT_TYPE, RELEASE_PREDICATE_TYPE, IN_TOTO_PAYLOAD_TYPE, LOCK_SUBJECT, BUNDLE_SUBJECT, MAX_STATEMENT_BYTES,
} from "./statement.js";
export type { ReleasePredicate, ReleaseStatement } from "./statement.js";
