import { AutonomyError } from "../lib/index.js";

/**
 * Every code a {@link CpClientError} can carry; docs/errors.md lists each.
 * The server's own problem code (RELEASE_NOT_FOUND, AUTH_REQUIRED, …) is
 * `problemCode`, so a caller matches on it without the client's code list
 * growing with every server area.
 */
export const CP_CLIENT_ERROR_CODES = ["CP_REQUEST_FAILED", "CP_REQUEST_REJECTED", "CP_RESPONSE_INVALID"] as const;
export type CpClientErrorCode = (typeof CP_CLIENT_ERROR_CODES)[number];

const HINTS: Readonly<Record<CpClientErrorCode, string>> = {
  CP_REQUEST_FAILED: "check the control plane URL (--server) is right and the server is running and reachable; the request is safe to retry",
  CP_REQUEST_REJECTED: "the control plane refused the request; see the message (its code and detail)",
  CP_RESPONSE_INVALID: "the control plane answered something that is not the API contract (a proxy, a different server, or another version); check --server",
};

export interface CpClientErrorInit {
  /** HTTP status, when the server answered at all. */
  status?: number;
  /** The problem details' own `code`, when the server answered problem details. */
  problemCode?: string;
  /** The problem's `detail` (what went wrong), or what the client saw. */
  detail: string;
  /** The problem's `hint`, else the client's. */
  hint?: string;
  /** Retry-After, in milliseconds from when the answer arrived; the caller decides whether to honour it. */
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * A control-plane call that did not succeed. `code` is the client's stable
 * code (transport failure, a refusal, a body off contract); `status`,
 * `problemCode`, `detail` and `hint` come from the server's problem details.
 * Never carries the bearer token: messages are built from the status, the
 * problem fields and a redacted URL only.
 */
export class CpClientError extends AutonomyError<CpClientErrorCode> {
  readonly status: number | null;
  readonly problemCode: string | null;
  readonly detail: string;
  readonly retryAfterMs: number | null;

  constructor(code: CpClientErrorCode, message: string, init: CpClientErrorInit) {
    super(code, message, {
      hint: init.hint ?? HINTS[code],
      ...(init.cause !== undefined ? { cause: init.cause } : {}),
      details: { status: init.status ?? null, problem_code: init.problemCode ?? null, detail: init.detail, retry_after_ms: init.retryAfterMs ?? null },
    });
    this.status = init.status ?? null;
    this.problemCode = init.problemCode ?? null;
    this.detail = init.detail;
    this.retryAfterMs = init.retryAfterMs ?? null;
  }

  /**
   * Worth retrying later unchanged: the transport failed, the server was busy
   * or broken (408, 429, 5xx; 501 is not), or the answer was garbage (a
   * restarting server or a proxy). A 4xx refusal will be refused again.
   */
  get retriable(): boolean {
    if (this.code !== "CP_REQUEST_REJECTED") return true;
    const s = this.status ?? 0;
    return s === 408 || s === 429 || (s >= 500 && s !== 501);
  }
}
