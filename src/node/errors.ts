import { AutonomyError, ExitCodes } from "../lib/index.js";

/**
 * Every code a {@link NodeError} can carry; docs/errors.md lists each. The
 * codes kept the names they had when `policy` and `runtime` threw them: they
 * are a stable contract of the CLI's JSON output.
 */
export const NODE_ERROR_CODES = [
  "POLICY_STATE_INVALID",
  "POLICY_STATE_LOCKED",
  "ACTIVATION_ROLLBACK_REFUSED",
  "ACTIVATION_EQUIVOCATION",
] as const;
export type NodeErrorCode = (typeof NODE_ERROR_CODES)[number];

/** Refusals that protect the node from old or conflicting releases are verification failures: exit 4. */
const VERIFICATION: ReadonlySet<NodeErrorCode> = new Set(["ACTIVATION_ROLLBACK_REFUSED", "ACTIVATION_EQUIVOCATION"]);

const HINTS: Readonly<Record<NodeErrorCode, string>> = {
  POLICY_STATE_INVALID: "the policy state under the state root is unreadable; inspect it with `autonomy policy status` or restore from backup",
  POLICY_STATE_LOCKED: "another process is changing the policy state; retry when it has finished",
  ACTIVATION_ROLLBACK_REFUSED: "this release is older than one already activated; to roll back on purpose, sign it with `--rollback`",
  ACTIVATION_EQUIVOCATION: "two different releases carry the same sequence; publish the new one with a higher sequence",
};

export class NodeError extends AutonomyError<NodeErrorCode> {
  constructor(code: NodeErrorCode, message: string, opts: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, {
      hint: opts.hint ?? HINTS[code],
      exitCode: VERIFICATION.has(code) ? ExitCodes.verification : ExitCodes.failure,
      ...(opts.cause !== undefined ? { cause: opts.cause } : {}),
      ...(opts.details !== undefined ? { details: opts.details } : {}),
    });
  }
}
