import { PROBLEM_CONTENT_TYPE, problemType } from "../../../lib/index.js";
import type { SegmentKind } from "../../types.js";

/**
 * The relay's wire format (docs/relay-transport.md): HTTP/2 over TLS 1.3 with
 * mutual authentication by fleet-CA certificates.
 *
 *   PUT /v1/segments/<64 hex>            x-autonomy-segment-kind: data | release
 *   content-length: <n>                  body: the segment's bytes
 *   → 200 {"segment_id", "duplicate", "inbox_seq"}   once stored durably
 *   → 4xx/5xx application/problem+json with `code`
 */
export const SEGMENTS_PATH = "/v1/segments/";
export const KIND_HEADER = "x-autonomy-segment-kind";
export const SEGMENT_KINDS: readonly SegmentKind[] = ["data", "release"];

/**
 * HTTP/2 flow control sized for multi-MiB segments over one session: the
 * default 64 KiB windows cap a stream at one window per round trip, so both
 * the per-stream window (SETTINGS_INITIAL_WINDOW_SIZE) and the connection
 * window are raised on the receiving side. (A larger SETTINGS_MAX_FRAME_SIZE
 * showed no gain: Node's nghttp2 sends 16 KiB DATA frames regardless.)
 * Measured in bench/relay.ts (docs/benchmarks.md).
 */
export const STREAM_WINDOW_BYTES = 16 * 1024 * 1024;
export const SESSION_WINDOW_BYTES = 64 * 1024 * 1024;

/** Client session memory limit in MB (Node's maxSessionMemory): pending segment writes count against it. */
export const CLIENT_SESSION_MEMORY_MB = 1024;

/** The largest response body the client reads (an ack or a problem document). */
export const MAX_RESPONSE_BYTES = 64 * 1024;

/** The 200 body. */
export interface AckBody {
  segment_id: string;
  duplicate: boolean;
  inbox_seq: number;
}

/** A problem+json body (RFC 9457 with our `code`), as src/lib's problem details spell it. */
export function problemBody(status: number, code: string, title: string, detail: string, hint?: string): string {
  return JSON.stringify({ type: problemType(code), title, status, detail, code, ...(hint === undefined ? {} : { hint }) });
}

export { PROBLEM_CONTENT_TYPE };

/** `host:port` or `[v6]:port` → the parts; undefined when malformed. */
export function splitHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? "", port };
}

/** `host:port` for an address, bracketing IPv6. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
