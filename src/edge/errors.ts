import { AutonomyError, ExitCodes } from "../lib/index.js";

/**
 * Every code an {@link EdgeError} can carry; docs/errors.md lists each (a test
 * keeps them in step). Relay failures (RELAY_*) are also the `last_error`
 * codes `edgectl relay status` shows per delivery.
 */
export const EDGE_ERROR_CODES = [
  // config
  "EDGE_CONFIG_INVALID",
  "EDGE_CONFIG_VERSION",
  // state root and storage
  "STATE_ROOT_INVALID",
  "STORAGE_CEILING_EXCEEDED",
  "SEGMENT_MISSING",
  "SEGMENT_CORRUPT",
  "SEGMENT_TOO_LARGE",
  "LEDGER_UNAVAILABLE",
  // relay (delivery failures)
  "RELAY_PEER_UNREACHABLE",
  "RELAY_TLS_REFUSED",
  "RELAY_ACK_TIMEOUT",
  "RELAY_PEER_REJECTED",
  "RELAY_PEER_ERROR",
  "RELAY_DIGEST_MISMATCH",
  "RELAY_QUOTA_EXHAUSTED",
  "RELAY_INTERRUPTED",
  "DEADLETTER_NOT_FOUND",
  "DELIVERY_STATE_CONFLICT",
  "INBOX_CURSOR_INVALID",
  "INBOX_ENTRY_ABANDONED",
  "UNKNOWN_PEER",
  // release relay
  "RELAYED_RELEASE_INVALID",
  // bootstrap
  "CERT_UNREADABLE",
  "CERT_EXPIRING",
  "CERT_NOT_YET_VALID",
  "CERT_KEY_INSECURE",
  "CERT_NAME_MISMATCH",
  "RECONSTRUCTION_FAILED",
  "RUNTIME_MANIFEST_INVALID",
  "OS_IDENTITY_UNREADABLE",
  // daemon and control socket
  "CONTROL_SOCKET_UNAVAILABLE",
  "CONTROL_SOCKET_UNTRUSTED",
  "DAEMON_ALREADY_RUNNING",
  "CONTROL_SOCKET_IN_USE",
  "CONTROL_REQUEST_FAILED",
  "RELAY_DISABLED",
  "CONTROL_SOCKET_PATH_INVALID",
  "LISTEN_ADDRESS_IN_USE",
  "STARTUP_INTERRUPTED",
] as const;
export type EdgeErrorCode = (typeof EDGE_ERROR_CODES)[number];

/** Failures a delivery attempt can end with; `retryable` tells the executor whether to back off and try again. */
export const RELAY_FAILURE_CODES = [
  "RELAY_PEER_UNREACHABLE", "RELAY_TLS_REFUSED", "RELAY_ACK_TIMEOUT", "RELAY_PEER_REJECTED", "RELAY_PEER_ERROR", "RELAY_DIGEST_MISMATCH", "SEGMENT_MISSING",
] as const satisfies readonly EdgeErrorCode[];

const VERIFICATION: ReadonlySet<EdgeErrorCode> = new Set(["RELAYED_RELEASE_INVALID", "SEGMENT_CORRUPT", "CONTROL_SOCKET_UNTRUSTED"]);

const HINTS: Readonly<Record<EdgeErrorCode, string>> = {
  EDGE_CONFIG_INVALID: "fix the named keys in edge.toml (docs/edge-config.md lists every key); `edged precheck --config edge.toml` checks it",
  EDGE_CONFIG_VERSION: "upgrade the file with `autonomy config migrate --config edge.toml --write` (without --write it shows the change)",
  STATE_ROOT_INVALID: "point [node] state_root at a writable directory on the persistent partition",
  STORAGE_CEILING_EXCEEDED: "the segment store is full of segments still needed (undelivered, or arrivals the application has not consumed), or the sending peer used its share of it; raise [storage] ceiling_bytes, or let deliveries and the application catch up (`edgectl relay status`)",
  SEGMENT_MISSING: "the segment is no longer in the store; it cannot be relayed (see `edgectl relay deadletter inspect`)",
  SEGMENT_CORRUPT: "a stored segment no longer matches its digest (disk corruption or tampering); it is refused and must be sent again",
  SEGMENT_TOO_LARGE: "split the content or raise [relay] max_segment_bytes on both sides",
  LEDGER_UNAVAILABLE: "the relay ledger under the state root cannot be opened; check disk space and permissions, and that no other edged uses this state root",
  RELAY_PEER_UNREACHABLE: "check the peer's address in edge.toml and that its edged is running; delivery is retried with backoff",
  RELAY_TLS_REFUSED: "the peer's certificate was refused or it refused ours; both must be issued by the fleet CA (`autonomy cert issue`), unexpired, and named as the peer id",
  RELAY_ACK_TIMEOUT: "the peer did not acknowledge in time; raise [relay] ack_timeout_seconds on slow links",
  RELAY_PEER_REJECTED: "the peer refused the segment (see the message); it will not be retried automatically unless the cause is temporary",
  RELAY_PEER_ERROR: "the peer failed to store the segment; check its disk and logs; delivery is retried with backoff",
  RELAY_DIGEST_MISMATCH: "the bytes did not match the segment id in transit; delivery is retried",
  RELAY_QUOTA_EXHAUSTED: "the daily quota is used up; deliveries resume after the reset, or raise it with `edgectl relay config set-bandwidth`",
  RELAY_INTERRUPTED: "the attempt was cut short (edged stopped or crashed mid-push); nothing was lost, the delivery is retried",
  DEADLETTER_NOT_FOUND: "list dead letters with `edgectl relay deadletter list`",
  DELIVERY_STATE_CONFLICT: "the delivery is not in a state this change applies to (another change won the race); read it again with `edgectl relay deadletter inspect`",
  INBOX_CURSOR_INVALID: "advance the inbox cursor only to a sequence number the inbox has handed out, and never backwards",
  INBOX_ENTRY_ABANDONED: "applying a received segment kept failing (see the cause code and edged's log); it was passed so later arrivals apply. Fix the cause, then have the peer send it again",
  UNKNOWN_PEER: "name a peer listed under [[peers]] in edge.toml",
  RELAYED_RELEASE_INVALID: "the relayed segment is not a release archive this node can read (hostile or malformed archive: see the cause); nothing was activated. A release that fails verification or the node's rules keeps its own code (as from a registry pull). Re-seed from a node whose active release verifies",
  CERT_UNREADABLE: "check [transport] cert_file, key_file and ca_file; issue new ones with `autonomy cert issue --ca DIR --name NODE`",
  CERT_EXPIRING: "issue a fresh certificate with `autonomy cert issue --ca DIR --name NODE --days 90` before it expires",
  CERT_NOT_YET_VALID: "the certificate's validity starts after this node's clock: check the system clock first (timedatectl, NTP; an RTC reset after an OS replacement is the usual cause), not the certificate",
  CERT_KEY_INSECURE: "a private key must be readable by its owner only: chmod 600 the key_file named in the message (and consider it copied: issue a new certificate)",
  CERT_NAME_MISMATCH: "the certificate is issued to another node: point [transport] cert_file/key_file at this node's, or issue one with `autonomy cert issue --ca DIR --name <[node] id>`",
  RECONSTRUCTION_FAILED: "edged must not start: restore the state root from backup or re-stage the runtime (`edged runtime stage`), then run `edged precheck` again",
  RUNTIME_MANIFEST_INVALID: "re-stage the runtime into the state root with a release key the node trusts",
  OS_IDENTITY_UNREADABLE: "check [bootstrap] os_release_file and kernel_release_file (defaults /etc/os-release and /proc/sys/kernel/osrelease); edged must not start without knowing which OS it runs on",
  CONTROL_SOCKET_UNAVAILABLE: "start edged (`edged run --config edge.toml`) or pass the socket it listens on with --socket",
  CONTROL_SOCKET_UNTRUSTED: "nothing was sent: the socket may have been planted by another local user. Check who created it (ls -la on the socket and its directory); edged's own socket is 0600 in a directory only its owner can write. If edged runs under a dedicated account, pass --socket-owner <that user>",
  DAEMON_ALREADY_RUNNING: "another edged holds this state root; stop it first",
  CONTROL_SOCKET_IN_USE: "another edged (or another program) serves on this control socket: stop it, or pass another --control-socket",
  CONTROL_REQUEST_FAILED: "edged refused or failed the request (see the message); its log has the details",
  RELAY_DISABLED: "set [relay] enabled = true in edge.toml and restart edged",
  CONTROL_SOCKET_PATH_INVALID: "pass --control-socket PATH under a directory you own (the default /run/edged needs root or a systemd RuntimeDirectory=edged), with a path of at most 97 bytes",
  STARTUP_INTERRUPTED: "edged was told to stop (SIGTERM/SIGINT) before it had started; it served nothing and stopped. Start it again when wanted; if start-up hangs, check the paths in the log's last line (e.g. --control-socket)",
  LISTEN_ADDRESS_IN_USE: "another process listens on that address (often another edged): stop it, or pick another port in the flag or key the message names",
};

export class EdgeError extends AutonomyError<EdgeErrorCode> {
  constructor(code: EdgeErrorCode, message: string, opts: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, {
      hint: opts.hint ?? HINTS[code],
      exitCode: VERIFICATION.has(code) ? ExitCodes.verification : ExitCodes.failure,
      ...(opts.cause === undefined ? {} : { cause: opts.cause }),
      ...(opts.details === undefined ? {} : { details: opts.details }),
    });
  }
}
