import http2 from "node:http2";
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from "node:http2";
import { isIP } from "node:net";
import type { PeerCertificate } from "node:tls";
import type { Clock } from "../../../lib/index.js";
import { peerCertIdentity } from "../../../pki/index.js";
import { EdgeError } from "../../errors.js";
import type { EdgeErrorCode } from "../../errors.js";
import type { PeerConfig, PeerTransport, PushResult, RefusedPeer, SegmentInfo } from "../../types.js";
import type { TlsMaterial } from "./receiver.js";
import { RefusalLog, isTlsRefusalCode, refusalDetail, tlsRefusalReason } from "./refusals.js";
import type { RefusalReason } from "./refusals.js";
import { CLIENT_SESSION_MEMORY_MB, KIND_HEADER, MAX_RESPONSE_BYTES, SEGMENTS_PATH, SESSION_WINDOW_BYTES, splitHostPort } from "./wire.js";

export interface PeerTransportOptions {
  tls: TlsMaterial;
  /** Connecting (TCP + TLS + the peer's HTTP/2 settings) must finish within this. */
  dialTimeoutMs: number;
  /** From the start of a request to the peer's complete answer. */
  ackTimeoutMs: number;
  onRefused?: (r: RefusedPeer) => void;
  clock?: Clock;
}

/** {@link PeerTransport} plus the outbound refusals it saw, for `edgectl relay status`. */
export interface RelayPeerTransport extends PeerTransport {
  refused(): RefusedPeer[];
}

interface Conn {
  address: string;
  session: ClientHttp2Session;
  ready: Promise<void>;
  /** Settles when the last large body queued on this session has been written out (see {@link SERIAL_BODY_BYTES}). */
  sending: Promise<void>;
}

/**
 * Bodies of at least this many bytes are written one after another on a
 * session, each starting once the previous one has been handed to the socket.
 * HTTP/2 would otherwise interleave the DATA frames of every stream in flight,
 * so all of them finish arriving together and the receiver's durable writes
 * all start at once while the link sits idle; one at a time, segment k is
 * stored while k+1 is still arriving (as on a plain socket). Smaller bodies
 * never wait behind a large one.
 */
export const SERIAL_BODY_BYTES = 256 * 1024;

type Retryable = "retry" | "final";

/**
 * The outbound half of the relay: one HTTP/2 session per peer, reused across
 * pushes and reconnected after an error. The peer's certificate must chain to
 * the fleet CA and name exactly the peer id; every failure is an EdgeError
 * with a RELAY_FAILURE_CODES code and `details.retryable`. An aborted push
 * rejects with the signal's reason (as fetch does), not an EdgeError.
 */
export function createPeerTransport(opts: PeerTransportOptions): RelayPeerTransport {
  const refusals = new RefusalLog({ ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.onRefused ? { onRefused: opts.onRefused } : {}) });
  const conns = new Map<string, Conn>();
  const ctx: ClientCtx = { opts, refusals, conns };
  return {
    push: (peer, segment, bytes, signal) => push(ctx, peer, segment, bytes, signal),
    refused: () => refusals.list(),
    close: async () => {
      const all = [...conns.values()];
      conns.clear();
      await Promise.all(all.map((c) => closeSession(c.session)));
    },
  };
}

interface ClientCtx {
  opts: PeerTransportOptions;
  refusals: RefusalLog;
  conns: Map<string, Conn>;
}

function closeSession(session: ClientHttp2Session): Promise<void> {
  if (session.closed || session.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => session.destroy(), 1000);
    session.close(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

async function push(ctx: ClientCtx, peer: PeerConfig, segment: SegmentInfo, bytes: Uint8Array, signal?: AbortSignal): Promise<PushResult> {
  let conn: Conn;
  try {
    signal?.throwIfAborted();
    if (splitHostPort(peer.address) === undefined) {
      throw fail("RELAY_PEER_UNREACHABLE", "final", peer, `peer ${peer.id}'s address ${JSON.stringify(peer.address)} is not host:port`);
    }
    conn = session(ctx, peer);
    await raceAbort(conn.ready, signal);
  } catch (e) {
    throw withBytesSent(e, 0); // no stream was opened: not one body byte left this node
  }
  return request(ctx, conn, peer, segment, bytes, signal);
}

/** Bytes the session's socket has written (a stream's own write callback fires only once all of it is sent). */
function socketBytesWritten(conn: Conn): number {
  const n = (conn.session.socket as { bytesWritten?: unknown } | undefined)?.bytesWritten;
  return typeof n === "number" ? n : Number.POSITIVE_INFINITY; // unknown: count the whole body as sent
}

/**
 * Records on a failed push how many body bytes may have left this node (`body_bytes_sent`, never fewer
 * than did), so the daily quota is charged only for those (docs/relay.md "Executor").
 */
function withBytesSent(err: Error, sent: number): Error;
function withBytesSent(err: unknown, sent: number): unknown;
function withBytesSent(err: unknown, sent: number): unknown {
  if (err instanceof EdgeError) {
    const details = (err.details ?? {}) as Record<string, unknown>;
    return new EdgeError(err.code, err.message, { cause: err.cause, details: { ...details, body_bytes_sent: sent } });
  }
  if (err instanceof Error) return Object.assign(err, { body_bytes_sent: sent });
  return err;
}

/** The peer's session, reused while it is healthy and its address unchanged. */
function session(ctx: ClientCtx, peer: PeerConfig): Conn {
  const cur = ctx.conns.get(peer.id);
  if (cur && cur.address === peer.address && !cur.session.closed && !cur.session.destroyed) return cur;
  if (cur) cur.session.destroy();
  const conn = dial(ctx, peer);
  ctx.conns.set(peer.id, conn);
  const forget = (): void => {
    if (ctx.conns.get(peer.id) === conn) ctx.conns.delete(peer.id);
  };
  conn.session.once("close", forget);
  conn.session.once("goaway", forget);
  conn.ready.catch(forget);
  return conn;
}

function dial(ctx: ClientCtx, peer: PeerConfig): Conn {
  const hp = splitHostPort(peer.address) ?? { host: "", port: 0 }; // checked by push()
  const { tls } = ctx.opts;
  const session = http2.connect(`https://${hp.host.includes(":") ? `[${hp.host}]` : hp.host}:${hp.port}`, {
    cert: tls.cert, key: tls.key, ca: tls.ca, minVersion: "TLSv1.3",
    // SNI cannot carry an IP address; the peer id is the name we expect anyway.
    ...(isIP(peer.id) === 0 ? { servername: peer.id } : {}),
    checkServerIdentity: (_host: string, cert: PeerCertificate) => checkPeerName(peer.id, cert),
    settings: { enablePush: false },
    // Node counts the bytes of pending writes against this (default 10 MB) and resets streams
    // with INTERNAL_ERROR beyond it: several multi-MiB segments in flight need more.
    maxSessionMemory: CLIENT_SESSION_MEMORY_MB,
  });
  session.on("error", () => undefined); // each failure is reported through `ready` or the stream
  const ready = new Promise<void>((resolve, reject) => {
    let connected = false;
    let done = false;
    const timer = setTimeout(() => {
      settle(fail("RELAY_PEER_UNREACHABLE", "retry", peer, `could not connect to peer ${peer.id} at ${peer.address} within ${ctx.opts.dialTimeoutMs} ms`, { timeout: true }));
    }, ctx.opts.dialTimeoutMs);
    const settle = (err?: EdgeError): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      session.off("remoteSettings", onSettings);
      session.off("error", onError);
      session.off("close", onClose);
      if (err) {
        session.destroy();
        reject(err);
      } else resolve();
    };
    const onSettings = (): void => {
      session.setLocalWindowSize(SESSION_WINDOW_BYTES);
      settle();
    };
    const onError = (e: Error & { code?: string }): void => settle(connectionError(ctx, peer, e));
    // Connected, then closed before the peer spoke HTTP/2: a Node peer drops a client
    // certificate it refuses right after the handshake, without an alert.
    const onClose = (): void => settle(connected ? refusedByPeer(ctx, peer) : fail("RELAY_PEER_UNREACHABLE", "retry", peer, `the connection to peer ${peer.id} at ${peer.address} closed while connecting`));
    session.once("connect", () => { connected = true; });
    session.once("remoteSettings", onSettings);
    session.once("error", onError);
    session.once("close", onClose);
  });
  return { address: peer.address, session, ready, sending: Promise.resolve() };
}

/** The server's certificate identity (src/pki certIdentity: its one CN; SANs never name a peer) must be the peer id. */
export function checkPeerName(id: string, cert: PeerCertificate): Error | undefined {
  const identity = peerCertIdentity(cert);
  if (identity.ok && identity.id === id) return undefined;
  const err = new Error(identity.ok ? `the certificate is for ${JSON.stringify(identity.id)} (its CN), not the peer id ${JSON.stringify(id)}` : `${identity.reason}; expected peer id ${JSON.stringify(id)}`);
  return Object.assign(err, { code: "ERR_TLS_CERT_ALTNAME_INVALID" });
}

const UNREACHABLE = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET", "EPIPE", "EADDRNOTAVAIL", "ERR_HTTP2_SESSION_ERROR", "ERR_HTTP2_GOAWAY_SESSION", "ERR_HTTP2_ERROR"]);

/** A connection-level failure: a TLS refusal (recorded) or the peer being unreachable. */
function connectionError(ctx: ClientCtx, peer: PeerConfig, e: Error & { code?: string }): EdgeError {
  if (isTlsRefusalCode(e.code)) {
    const reason = tlsRefusalReason(e.code);
    const ours = reason === "NAME_MISMATCH" || !(e.code ?? "").startsWith("ERR_SSL_");
    const who = ours ? `this node refused peer ${peer.id}'s certificate` : `peer ${peer.id} refused this node's certificate`;
    return refused(ctx, peer, reason, `${who}: ${refusalDetail(reason, e.code, e.message)}`);
  }
  const msg = UNREACHABLE.has(e.code ?? "") ? `peer ${peer.id} at ${peer.address} is unreachable (${e.code ?? "error"})` : `the connection to peer ${peer.id} at ${peer.address} failed: ${e.message}`;
  return fail("RELAY_PEER_UNREACHABLE", "retry", peer, msg, { cause_code: e.code });
}

function refusedByPeer(ctx: ClientCtx, peer: PeerConfig): EdgeError {
  return refused(ctx, peer, "TLS_ERROR", `peer ${peer.id} closed the connection right after the TLS handshake: it most likely refused this node's certificate (see its \`edgectl relay status\`)`);
}

function refused(ctx: ClientCtx, peer: PeerConfig, reason: RefusalReason, message: string): EdgeError {
  ctx.refusals.record("outbound", peer.id, reason, message);
  return fail("RELAY_TLS_REFUSED", "retry", peer, message, { refusal: reason });
}

function fail(code: EdgeErrorCode, retry: Retryable, peer: PeerConfig, message: string, details: Record<string, unknown> = {}): EdgeError {
  return new EdgeError(code, message, { details: { retryable: retry === "retry", peer: peer.id, ...details } });
}

function raceAbort<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : new DOMException(typeof reason === "string" ? reason : "the push was aborted", "AbortError");
}

/** One PUT; resolves on the peer's 200 ack, rejects with a mapped EdgeError. */
function request(ctx: ClientCtx, conn: Conn, peer: PeerConfig, segment: SegmentInfo, bytes: Uint8Array, signal?: AbortSignal): Promise<PushResult> {
  return new Promise<PushResult>((resolve, reject) => {
    let stream: ClientHttp2Stream | undefined;
    let settled = false;
    const turn = bodyTurn(conn, bytes.length);
    const settle = (err: Error | undefined, result?: PushResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      turn.done();
      signal?.removeEventListener("abort", onAbort);
      // A failed, timed-out or aborted push cancels its stream; the session stays for the others.
      // An upper bound on this push's body bytes on the wire: what the connection wrote since the request
      // began (other pushes' bytes and framing included). Charging more than was sent is safe; less is not.
      const wrote = socketBytesWritten(conn) - wroteBefore;
      const sent = stream === undefined ? 0 : Number.isFinite(wrote) ? Math.min(bytes.length, Math.max(0, wrote)) : bytes.length;
      if (err !== undefined && stream !== undefined && !stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
      if (err === undefined && result) resolve(result);
      else reject(withBytesSent(err ?? new Error("push ended without a result"), sent));
    };
    const wroteBefore = socketBytesWritten(conn);
    // The ack timeout covers the wait for this body's turn too.
    const timer = setTimeout(() => settle(fail("RELAY_ACK_TIMEOUT", "retry", peer, `peer ${peer.id} did not acknowledge segment ${segment.id} within ${ctx.opts.ackTimeoutMs} ms`)), ctx.opts.ackTimeoutMs);
    const onAbort = (): void => settle(abortReason(signal as AbortSignal));
    signal?.addEventListener("abort", onAbort, { once: true });
    void turn.ready.then(() => {
      if (settled) return;
      stream = send(ctx, conn, peer, segment, bytes, settle, turn.done);
    });
  });
}

/** This body's turn on the session: `ready` when it may be written, `done` (idempotent) once it was written or its push settled. */
function bodyTurn(conn: Conn, size: number): { ready: Promise<void>; done: () => void } {
  if (size < SERIAL_BODY_BYTES) return { ready: Promise.resolve(), done: () => undefined };
  const ready = conn.sending;
  let done = (): void => undefined;
  conn.sending = new Promise<void>((resolve) => {
    done = resolve;
  });
  return { ready, done: () => done() };
}

/** Opens the stream and writes the body; `written` is called once the body has been handed to the socket. */
function send(ctx: ClientCtx, conn: Conn, peer: PeerConfig, segment: SegmentInfo, bytes: Uint8Array, settle: (err: Error | undefined, result?: PushResult) => void, written: () => void): ClientHttp2Stream | undefined {
  let stream: ClientHttp2Stream;
  try {
    stream = conn.session.request({
      ":method": "PUT", ":path": `${SEGMENTS_PATH}${segment.id}`,
      "content-type": "application/octet-stream", "content-length": String(bytes.length), [KIND_HEADER]: segment.kind,
    });
  } catch (e) {
    conn.session.destroy();
    settle(connectionError(ctx, peer, e as Error & { code?: string }));
    return undefined;
  }
  let status = 0;
  let headers: IncomingHttpHeaders = {};
  const body: Buffer[] = [];
  let size = 0;
  stream.on("response", (h) => {
    headers = h;
    status = Number(h[":status"]);
  });
  stream.on("data", (c: Buffer) => {
    size += c.length;
    if (size <= MAX_RESPONSE_BYTES) body.push(c);
  });
  stream.on("end", () => settle(...answer(ctx, peer, segment, status, headers, Buffer.concat(body))));
  stream.on("error", (e: Error & { code?: string }) => {
    // A stream reset concerns this push only; anything else (TLS alert, socket gone) the whole session.
    if (e.code !== "ERR_HTTP2_STREAM_ERROR") conn.session.destroy();
    settle(e.code === "ERR_HTTP2_STREAM_ERROR"
      ? fail("RELAY_PEER_ERROR", "retry", peer, `the transfer of segment ${segment.id} to peer ${peer.id} was reset (${e.message})`)
      : connectionError(ctx, peer, e));
  });
  stream.on("close", () => settle(fail("RELAY_PEER_ERROR", "retry", peer, `peer ${peer.id} closed the transfer of segment ${segment.id} without an answer`)));
  // The callback runs once the body is out (or the stream failed): the next large body's turn.
  stream.end(bytes, written);
  return stream;
}

type Settled = [Error | undefined, PushResult?];

/** Maps the peer's answer: 200 → the ack; a problem document → its code, retryable or not. */
function answer(ctx: ClientCtx, peer: PeerConfig, segment: SegmentInfo, status: number, headers: IncomingHttpHeaders, body: Buffer): Settled {
  // No response headers at all: the peer went away mid-transfer (a crashed or killed edged ends the
  // stream without an answer). Nothing was refused; retry, never dead-letter it as a rejection.
  if (status === 0) return [fail("RELAY_PEER_ERROR", "retry", peer, `peer ${peer.id} ended the transfer of segment ${segment.id} without an answer (it may have stopped)`)];
  const json = parseJson(body);
  if (status === 200) {
    const ack = json as { segment_id?: unknown; duplicate?: unknown } | undefined;
    if (ack?.segment_id === segment.id && typeof ack.duplicate === "boolean") return [undefined, { duplicate: ack.duplicate }];
    return [fail("RELAY_PEER_ERROR", "retry", peer, `peer ${peer.id} answered 200 without a valid acknowledgement of segment ${segment.id}`)];
  }
  const problem = (json ?? {}) as { code?: unknown; detail?: unknown };
  const code = typeof problem.code === "string" ? problem.code : undefined;
  const detail = typeof problem.detail === "string" ? problem.detail : `HTTP ${status}`;
  const details = { status, peer_code: code, content_type: headers["content-type"] };
  const said = `peer ${peer.id} refused segment ${segment.id}: ${detail}${code === undefined ? "" : ` (${code})`}`;
  if (code === "RELAY_DIGEST_MISMATCH") return [fail("RELAY_DIGEST_MISMATCH", "retry", peer, said, details)];
  if (status === 403 && code === "UNKNOWN_PEER") {
    ctx.refusals.record("outbound", peer.id, "UNKNOWN_PEER", `peer ${peer.id} does not list this node as a peer: ${detail}`);
  }
  // A receiver learns its peers only on restart: 403 UNKNOWN_PEER may mean "not yet", so it is retried (413 stays final).
  if (status === 403 && code === "UNKNOWN_PEER") return [fail("RELAY_PEER_REJECTED", "retry", peer, said, details)];
  if (status >= 500) return [fail("RELAY_PEER_ERROR", "retry", peer, `peer ${peer.id} failed to store segment ${segment.id}: ${detail}${code === undefined ? "" : ` (${code})`}`, details)];
  return [fail("RELAY_PEER_REJECTED", status === 429 ? "retry" : "final", peer, said, details)];
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8")) as unknown;
  } catch {
    return undefined;
  }
}
