import { AutonomyError } from "../lib/index.js";

export const PROOF_ERROR_CODES = ["PROOF_SUITE_UNKNOWN", "PROOF_SUITE_MISSING", "PROOF_CP_START_FAILED", "PROOF_NO_OWNER_TOKEN", "PROOF_SETUP_FAILED", "PROOF_INTERRUPTED", "PROOF_TIMEOUT", "PROOF_EDGED_START_FAILED"] as const;
export type ProofErrorCode = (typeof PROOF_ERROR_CODES)[number];

/** A proof run that could not be carried out (as opposed to one whose checks failed: that is a report with pass=false). */
export class ProofError extends AutonomyError<ProofErrorCode> {}
