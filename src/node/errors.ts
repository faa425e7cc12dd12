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
  "ACTIVATION_EXPIRED",
  "ACTIVATION_UNTRUSTED",
  "ACTIVATION_TOO_LARGE",
  "TRUST_NOT_CONFIGURED",
  "TRUST_INVALID",
  "TOKEN_STORE_INVALID",
  "TOKEN_STORE_LOCKED",
  "TOKEN_NOT_FOUND",
  "TOKEN_AGENT_INVALID",
  "CONTROL_PLANE_STATE_INVALID",
] as const;
export type NodeErrorCode = (typeof NODE_ERROR_CODES)[number];

/** Refusals that protect the node from old or conflicting releases are verification failures: exit 4. */
const VERIFICATION: ReadonlySet<NodeErrorCode> = new Set(["ACTIVATION_ROLLBACK_REFUSED", "ACTIVATION_EQUIVOCATION", "ACTIVATION_EXPIRED", "ACTIVATION_UNTRUSTED"]);

const HINTS: Readonly<Record<NodeErrorCode, string>> = {
  POLICY_STATE_INVALID: "the policy state under the state root is unreadable; inspect it with `autonomy policy status` or restore from backup",
  POLICY_STATE_LOCKED: "another process is changing the policy state; retry when it has finished",
  ACTIVATION_ROLLBACK_REFUSED: "this release is older than one already accepted; to go back to older content, publish it as a new release with a higher sequence (`autonomy release rollback --to REF --sequence N`)",
  ACTIVATION_EQUIVOCATION: "two different statements carry the same sequence (recorded in `runtime status`); publish the intended release with a higher sequence, and treat the release key as possibly compromised if you did not sign both",
  ACTIVATION_EXPIRED: "the release statement has expired; publish a fresh one (`autonomy sign … --expires-in`) or check the node's clock",
  ACTIVATION_UNTRUSTED: "the release is for another channel or repository, or its signers no longer meet the threshold; check `autonomy runtime trust show`",
  ACTIVATION_TOO_LARGE: "the signed release (image, lock and bundle) is larger than the node keeps in its release store; free space and raise the budget (`storeBudgetBytes`), or release a smaller image",
  TRUST_NOT_CONFIGURED: "set the node's trusted release keys first: `autonomy runtime trust set --state-root DIR --key release.pub --repository REPO`",
  TRUST_INVALID: "fix the trust root with `autonomy runtime trust set` (keys must be ECDSA P-256 SPKI PEM, threshold at most the number of keys)",
  TOKEN_STORE_INVALID: "the token file under the state root (auth/tokens.json) is unreadable or malformed; restore it, or move it away and create new tokens with `autonomy runtime token create`",
  TOKEN_STORE_LOCKED: "another process is changing the tokens; retry when it has finished",
  TOKEN_NOT_FOUND: "list the token ids with `autonomy runtime token list --state-root DIR`",
  CONTROL_PLANE_STATE_INVALID: "control-plane.json under the state root is unreadable or malformed; move it away and enroll again (`autonomy runtime start --server URL --enroll-token T`)",
  TOKEN_AGENT_INVALID: "use an agent id of 1-128 letters, digits or . _ : @ - (the policy principal Agent::\"<id>\")",
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
