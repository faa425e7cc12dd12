import { AutonomyError, ExitCodes } from "../lib/index.js";

/** Every code a {@link RuntimeError} can carry; docs/errors.md lists each. */
export const RUNTIME_ERROR_CODES = [
  "INPUT_NOT_REPRESENTABLE",
  "TOOL_UNKNOWN",
  "TOOL_PARAMS_INVALID",
  "TOOL_TARGET_NOT_ALLOWED",
  "TOOL_FAILED",
  "TOOL_REDIRECT_DENIED",
  "UPSTREAM_UNAVAILABLE",
  "RUNTIME_CONFIG_INVALID",
  "AUTH_REQUIRED",
  "AUTH_TOKEN_REVOKED",
  "HOST_NOT_ALLOWED",
  "HOST_HEADER_INVALID",
  "ORIGIN_NOT_ALLOWED",
  "RUNTIME_LISTEN_REFUSED",
  "RUNTIME_LISTEN_IN_USE",
  "RUNTIME_TLS_INVALID",
  "NODE_NOT_ENROLLED",
  "NODE_ENROLLMENT_REFUSED",
  "NODE_SERVER_MISMATCH",
  "NODE_ID_INVALID",
  "CP_PLAIN_HTTP_REFUSED",
  "RELEASE_LOCATION_UNTRUSTED",
] as const;
export type RuntimeErrorCode = (typeof RUNTIME_ERROR_CODES)[number];

/** Activation refusals are NodeError (and VerificationError) codes; the one runtime code is a release from a place the node does not trust. */
const VERIFICATION: ReadonlySet<RuntimeErrorCode> = new Set<RuntimeErrorCode>(["RELEASE_LOCATION_UNTRUSTED"]);

/** Refusals of the caller's input: HTTP 400 through the one error mapping (exit 2 for a CLI). */
const USAGE: ReadonlySet<RuntimeErrorCode> = new Set(["INPUT_NOT_REPRESENTABLE", "NODE_ID_INVALID", "CP_PLAIN_HTTP_REFUSED"]);

const HINTS: Readonly<Record<RuntimeErrorCode, string>> = {
  INPUT_NOT_REPRESENTABLE: "send only values a policy sees exactly: no null (leave the key out), integers within ±(2^53−1), at most 4 decimal places, no duplicate keys; send anything else as a string",
  TOOL_UNKNOWN: "list the tools with `autonomy runtime tools` or the MCP tools/list call",
  TOOL_PARAMS_INVALID: "check the tool's parameters against its input schema",
  TOOL_TARGET_NOT_ALLOWED: "the target is not on the runtime's allow-list (--allowed-domains); ask the operator to add it",
  TOOL_FAILED: "the tool ran and failed; see the message",
  TOOL_REDIRECT_DENIED: "the server redirected the request to a URL the policy does not allow; ask for the final URL directly if the policy permits it",
  UPSTREAM_UNAVAILABLE: "check the upstream MCP server configured in the runtime config is running and reachable",
  RUNTIME_CONFIG_INVALID: "fix the runtime configuration file at the reported field",
  AUTH_REQUIRED: "send `Authorization: Bearer <token>`; the node's operator creates one with `autonomy runtime token create --state-root DIR --agent ID`",
  AUTH_TOKEN_REVOKED: "this token was revoked; ask the node's operator for a new one (`autonomy runtime token create`)",
  HOST_NOT_ALLOWED: "call the runtime by the address it listens on (127.0.0.1, localhost, [::1]) or a name in its TLS certificate",
  HOST_HEADER_INVALID: "send exactly one Host header naming the runtime's address",
  ORIGIN_NOT_ALLOWED: "browser pages may not call the runtime; call it from the agent process",
  RUNTIME_LISTEN_REFUSED: "listen on loopback (127.0.0.1:PORT) or a unix socket (unix:/path); a wider address needs --tls-cert and --tls-key and at least one token (`autonomy runtime token create`)",
  RUNTIME_LISTEN_IN_USE: "another process is serving on this port or socket; stop it, or choose another --listen",
  NODE_NOT_ENROLLED: "enroll the node once: `autonomy runtime start --server URL --enroll-token T` (the control plane's operator creates T; it is single-use)",
  NODE_ENROLLMENT_REFUSED: "the enrollment token is wrong, expired or already spent (it is single-use): ask the control plane's operator for a new one",
  NODE_SERVER_MISMATCH: "this node is enrolled with another control plane; pass that --server, or move control-plane.json out of the state root and enroll with the new one",
  NODE_ID_INVALID: "pass --node-id with 1–63 of a-z 0-9 . _ - starting with a letter or digit",
  CP_PLAIN_HTTP_REFUSED: "use https:// for a control plane off this host (a private CA: --server-ca ca.pem), or, on a network you trust, pass --server-plain-http to send the enrollment token and node credential in clear text",
  RELEASE_LOCATION_UNTRUSTED: "the node pulls releases only from the repository of its trust root (`autonomy runtime trust show`); publish the release there, or have the control plane name that repository",
  RUNTIME_TLS_INVALID: "pass a PEM certificate (--tls-cert) and its PEM private key (--tls-key), both readable",
};

export class RuntimeError extends AutonomyError<RuntimeErrorCode> {
  constructor(code: RuntimeErrorCode, message: string, opts: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, {
      hint: opts.hint ?? HINTS[code],
      exitCode: VERIFICATION.has(code) ? ExitCodes.verification : USAGE.has(code) ? ExitCodes.usage : ExitCodes.failure,
      ...(opts.cause !== undefined ? { cause: opts.cause } : {}),
      ...(opts.details !== undefined ? { details: opts.details } : {}),
    });
  }
}
