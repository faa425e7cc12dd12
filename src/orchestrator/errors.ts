import { AutonomyError, ExitCodes } from "../lib/index.js";
import { rolloutErrorStatus } from "./rollouts/index.js";

/**
 * Every code an {@link OrchestratorError} can carry; docs/errors.md lists each.
 * `AUTH_REQUIRED` is not here: it is the runtime's code with the same meaning
 * (no bearer token), reused so clients match one code for both servers.
 */
export const ORCHESTRATOR_ERROR_CODES = [
  "TOKEN_INVALID",
  "TOKEN_EXPIRED",
  "TOKEN_REVOKED",
  "CP_TOKEN_NOT_FOUND",
  "PERMISSION_DENIED",
  "NODE_IDENTITY_MISMATCH",
  "ENROLLMENT_TOKEN_INVALID",
  "ENROLLMENT_NODE_MISMATCH",
  "ENROLLMENT_LABELS_REFUSED",
  "NODE_ALREADY_ENROLLED",
  "RELEASE_NOT_FOUND",
  "RELEASE_CONFLICT",
  "RELEASE_STATEMENT_INVALID",
  "RELEASE_CHANNEL_MISMATCH",
  "RELEASE_IMAGE_MISMATCH",
  "RELEASE_SIGNATURE_UNTRUSTED",
  "STORE_OPEN_FAILED",
  "STORE_UNAVAILABLE",
  "STORE_SCHEMA_TOO_NEW",
  "STORE_MIGRATION_FAILED",
  "STORE_FULL",
  "STORE_BUSY",
  "NODE_NOT_FOUND",
  "ACK_RELEASE_NOT_OFFERED",
  "CP_LISTEN_FAILED",
  "CP_LISTEN_REFUSED",
  "ROLLOUT_CONFLICT",
] as const;
export type OrchestratorErrorCode = (typeof ORCHESTRATOR_ERROR_CODES)[number] | "AUTH_REQUIRED";

/** The HTTP status of each code on the wire (anything else is a 500). */
export const ORCHESTRATOR_STATUS: Readonly<Partial<Record<OrchestratorErrorCode, number>>> = {
  AUTH_REQUIRED: 401,
  TOKEN_INVALID: 401,
  TOKEN_EXPIRED: 401,
  TOKEN_REVOKED: 401,
  CP_TOKEN_NOT_FOUND: 404,
  ENROLLMENT_TOKEN_INVALID: 401,
  PERMISSION_DENIED: 403,
  NODE_IDENTITY_MISMATCH: 403,
  ENROLLMENT_NODE_MISMATCH: 403,
  ENROLLMENT_LABELS_REFUSED: 400,
  NODE_ALREADY_ENROLLED: 409,
  RELEASE_NOT_FOUND: 404,
  RELEASE_CONFLICT: 409,
  RELEASE_STATEMENT_INVALID: 400,
  RELEASE_CHANNEL_MISMATCH: 400,
  RELEASE_IMAGE_MISMATCH: 400,
  RELEASE_SIGNATURE_UNTRUSTED: 422,
  STORE_UNAVAILABLE: 503,
  STORE_FULL: 507,
  STORE_BUSY: 503,
  NODE_NOT_FOUND: 404,
  ACK_RELEASE_NOT_OFFERED: 409,
  ROLLOUT_CONFLICT: 409,
};

const USAGE: ReadonlySet<OrchestratorErrorCode> = new Set(["CP_LISTEN_REFUSED", "RELEASE_STATEMENT_INVALID", "RELEASE_CHANNEL_MISMATCH", "RELEASE_IMAGE_MISMATCH"]);

const HINTS: Readonly<Record<OrchestratorErrorCode, string>> = {
  AUTH_REQUIRED: "send `Authorization: Bearer <token>`; an operator token comes from the bootstrap token `autonomy serve` printed, or `autonomy token create`",
  TOKEN_INVALID: "the token is not one this control plane issued; check AUTONOMY_TOKEN / --token",
  TOKEN_EXPIRED: "the token's lifetime is over; ask an owner for a new one (`autonomy token create`)",
  TOKEN_REVOKED: "this token was revoked; ask an owner for a new one (`autonomy token create`)",
  CP_TOKEN_NOT_FOUND: "list the operator tokens with `autonomy token list` and pass a token_id from it",
  PERMISSION_DENIED: "use a token whose role grants this permission (docs/control-plane.md lists the roles)",
  NODE_IDENTITY_MISMATCH: "a node credential may report only as its own node_id",
  ENROLLMENT_TOKEN_INVALID: "enrollment tokens are single-use and expire; ask an operator for a new one (POST /v1/enrollment-tokens)",
  ENROLLMENT_LABELS_REFUSED: "leave labels out of the enrollment request; an operator pins a node's labels in the enrollment token (POST /v1/enrollment-tokens labels)",
  ENROLLMENT_NODE_MISMATCH: "this enrollment token is pinned to another node_id; enroll with that id or ask for a new token",
  NODE_ALREADY_ENROLLED: "the node id is taken; choose another id or remove the old node first",
  RELEASE_NOT_FOUND: "list the releases with `autonomy release list`",
  RELEASE_CONFLICT: "another statement already holds this channel and sequence (equivocation); sign the new release with a higher sequence",
  RELEASE_STATEMENT_INVALID: "publish the DSSE envelope `autonomy release sign` wrote (an in-toto release statement)",
  RELEASE_SIGNATURE_UNTRUSTED: "publish a statement signed by the release key(s) this control plane was started with (autonomy serve --release-key); `autonomy release sign` makes one",
  RELEASE_CHANNEL_MISMATCH: "pass the statement's own channel as `channel`",
  RELEASE_IMAGE_MISMATCH: "the image reference's digest must be the statement's image digest; publish the reference the statement was signed for",
  STORE_OPEN_FAILED: "check --db: a writable file path (its directory must exist) or a reachable postgres:// URL",
  STORE_UNAVAILABLE: "the store did not answer; retry later",
  STORE_SCHEMA_TOO_NEW: "this database was migrated by a newer autonomy; run that version (or a newer one) against it",
  CP_LISTEN_REFUSED: "listen on loopback (the default 127.0.0.1:8888), or pass --tls-cert and --tls-key; --insecure-listen only behind a TLS-terminating proxy on the same host",
  CP_LISTEN_FAILED: "choose a free address with --listen HOST:PORT (port 0 picks one), or stop what holds it",
  STORE_MIGRATION_FAILED: "the schema migration failed and was rolled back; see the message, fix the cause and start again",
  STORE_FULL: "the control plane's disk is full and nothing of the request was kept; an operator must free space (retrying at once will not help)",
  STORE_BUSY: "another writer holds the store's lock and nothing of the request was kept; retry after the Retry-After seconds (event ingestion is idempotent)",
  NODE_NOT_FOUND: "list the fleet with `autonomy node list`; a node appears once it has enrolled",
  ACK_RELEASE_NOT_OFFERED: "a node acks only a release this control plane offered it (GET /v1/releases/latest answered it, or a rollout assigned it); poll first, then ack",
  ROLLOUT_CONFLICT: "the plan kept changing under the request (the scheduler or another operator stepped it); GET it and retry the command",
};

/** A control-plane error: a stable code, an HTTP status ({@link ORCHESTRATOR_STATUS}) and a hint. */
export class OrchestratorError extends AutonomyError<OrchestratorErrorCode> {
  constructor(code: OrchestratorErrorCode, message: string, options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, { hint: options.hint ?? HINTS[code], exitCode: USAGE.has(code) ? ExitCodes.usage : ExitCodes.failure, cause: options.cause, details: options.details });
  }
}

/** A request refused by validation: 400 REQUEST_INVALID (the lib's HTTP code) naming the fields. */
export class RequestInvalid extends AutonomyError<"REQUEST_INVALID"> {
  constructor(message: string) {
    super("REQUEST_INVALID", message, { hint: "fix the named fields (see /openapi.json for the schema)", exitCode: ExitCodes.usage });
  }
}

/** HTTP status of an error raised by the control plane (undefined: the lib's rule). */
export function orchestratorStatusOf(e: AutonomyError): number | undefined {
  if (e instanceof RequestInvalid) return 400;
  if (e instanceof OrchestratorError) return ORCHESTRATOR_STATUS[e.code];
  // The rollout engine's errors carry their own statuses (400/404/409, 500 for a corrupt stored state).
  return rolloutErrorStatus(e);
}
