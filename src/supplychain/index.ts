export { signRelease, DEFAULT_CHANNEL, DEFAULT_EXPIRES_IN_MS } from "./sign-release.js";
export type { SignReleaseOptions, SignReleaseResult, NamedFile } from "./sign-release.js";
export { verifyRelease } from "./verify-release.js";
export type { VerifyReleaseOptions, VerifyReleaseReport, VerifyStep, IgnoredAttachment } from "./verify-release.js";
export { findStatements, verifyStatementEnvelope, MAX_STATEMENT_CANDIDATES, ISSUED_AT_SKEW_MS } from "./find-statements.js";
export type { ReleaseTrust, SkippedCandidate, FoundStatement, StatementEnvelope } from "./find-statements.js";
export { publishStatement, publishEnvelopeBytes, PREDICATE_TYPE_ANNOTATION } from "./publish-statement.js";
export { trustedKeys, releaseRepository } from "./trust.js";
export { signSubject, COSIGN_SIGNATURE_ANNOTATION, SIGNED_AT_ANNOTATION } from "./signatures.js";
export type { SignOptions } from "./signatures.js";
export {
  buildStatement, signStatement, openStatement, parseStatementBytes, StatementRejected,
  STATEMENT_TYPE, RELEASE_PREDICATE_TYPE, IN_TOTO_PAYLOAD_TYPE, LOCK_SUBJECT, BUNDLE_SUBJECT, MAX_STATEMENT_BYTES,
} from "./statement.js";
export type { ReleasePredicate, ReleaseStatement } from "./statement.js";
export { rollbackRelease } from "./rollback.js";
export type { RollbackOptions, RollbackResult, RestoredRelease } from "./rollback.js";
export { signRollbackTrio } from "./trio.js";
export type { ReleaseContent, RollbackTrio, RollbackTrioOptions, SignedReleaseStatement } from "./trio.js";
