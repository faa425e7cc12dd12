import { createHash } from "node:crypto";
import http2 from "node:http2";
import type { IncomingHttpHeaders, ServerHttp2Session, ServerHttp2Stream } from "node:http2";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { Clock } from "../../../lib/index.js";
import { AutonomyError } from "../../../lib/index.js";
import { x509Identity } from "../../../pki/index.js";
import { EdgeError } from "../../errors.js";
import { SegmentAssembler } from "../../storage/index.js";
import type { PeerIdentity, RefusedPeer, SegmentInfo, SegmentKind, SegmentSink } from "../../types.js";
import { SEGMENT_ID_RE } from "../../types.js";
import { HashWorker } from "./hash-worker.js";
import { RefusalLog, refusalDetail, tlsRefusalReason } from "./refusals.js";
import {
  KIND_HEADER, PROBLEM_CONTENT_TYPE, SEGMENTS_PATH, SEGMENT_KINDS, SESSION_WINDOW_BYTES, STREAM_WINDOW_BYTES,
  joinHostPort, problemBody, splitHostPort,
} from "./wire.js";

/** This node's TLS identity: PEM certificate and key, and the fleet CA certificate (the only one trusted). */
export interface TlsMaterial {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
}

/** The peers allowed to send: a list, or a function read on every request (so a config reload applies at once). */
export type PeerList = readonly { id: string }[] | (() => readonly { id: string }[]);

export interface RelayReceiverOptions {
  /** `host:port` to listen on (port 0: any free port; `address` says which). */
  listen: string;
  tls: TlsMaterial;
  peers: PeerList;
  sink: SegmentSink;
  maxSegmentBytes: number;
  onRefused?: (r: RefusedPeer) => void;
  clock?: Clock;
  /** Called with a sink failure answered as 5xx (the answer never carries its message): the daemon logs it. */
  onError?: (err: unknown) => void;
  /** A session with no activity for this long is closed (the sender reconnects); default 120 s. */
  idleTimeoutMs?: number;
}

export interface RelayReceiver {
  /** `host:port` actually bound. */
  readonly address: string;
  close(): Promise<void>;
  /** Inbound TLS refusals and unknown peers, newest first. */
  refused(): RefusedPeer[];
  /** Authenticated HTTP/2 sessions: open now, and accepted since start (senders reuse one per peer). */
  sessions(): { open: number; total: number };
}

/** SETTINGS_MAX_CONCURRENT_STREAMS advertised to every sender. */
export const MAX_CONCURRENT_STREAMS = 32;

/**
 * Bytes the receiver holds for bodies in flight, across all sessions:
 * 8 × max_segment_bytes (a sender's default max_concurrent_relays, so one
 * peer's full window of max-size segments fits) or 256 MiB, whichever is
 * smaller, but never less than one segment (the largest allowed always fits).
 */
export function inFlightBudget(maxSegmentBytes: number): number {
  return Math.max(maxSegmentBytes, Math.min(8 * maxSegmentBytes, 256 * 1024 * 1024));
}

/** The receiver-wide reservation counter for bodies being read and stored. */
class ByteBudget {
  private used = 0;
  constructor(readonly limit: number) {}
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }
  give(n: number): void {
    this.used -= n;
  }
}

/** Who is on the other end of a session, from its verified client certificate. */
interface SessionPeer {
  /** The certificate's identity (its CN by the pki rule); undefined when there is none or it is ambiguous. */
  cn: string | undefined;
  fingerprint: string;
  remote: string;
  /** Why the certificate names no single node (no CN, or several). */
  ambiguous?: string;
}

/**
 * Starts the relay receiver: an HTTP/2 server over TLS 1.3 that accepts only
 * client certificates issued by the fleet CA (the handshake fails otherwise;
 * the refusal is recorded), and only from configured peers (403 UNKNOWN_PEER).
 * A segment is streamed with a hard size cap, hashed while it arrives, refused
 * when its bytes do not match its id, and acknowledged only after the sink
 * stored it durably.
 */
export async function startRelayReceiver(opts: RelayReceiverOptions): Promise<RelayReceiver> {
  const listen = splitHostPort(opts.listen);
  if (listen === undefined) throw new EdgeError("EDGE_CONFIG_INVALID", `relay listen address ${JSON.stringify(opts.listen)} is not host:port`);
  const budget = new ByteBudget(inFlightBudget(opts.maxSegmentBytes));
  const hasher = new HashWorker();
  const refusals = new RefusalLog({ ...(opts.clock ? { clock: opts.clock } : {}), ...(opts.onRefused ? { onRefused: opts.onRefused } : {}) });
  const server = http2.createSecureServer({
    cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.ca,
    requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.3", allowHTTP1: false,
    // Node's default is 2^32 - 1 concurrent streams: a bounded number, plus the byte budget below, bounds memory per peer.
    settings: { initialWindowSize: STREAM_WINDOW_BYTES, enablePush: false, maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
    maxSessionMemory: 64,
  });
  // A refused handshake destroys the socket before tlsClientError, and with it the remote
  // address; remember it per raw connection (the TLS socket wraps it as `_parent`).
  const remotes = new WeakMap<Socket, string>();
  server.on("connection", (raw: Socket) => {
    if (raw.remoteAddress !== undefined) remotes.set(raw, raw.remoteAddress);
  });
  server.on("tlsClientError", (err: Error & { code?: string }, socket: TLSSocket) => {
    const parent = (socket as unknown as { _parent?: Socket })._parent;
    const remote = socket.remoteAddress ?? (parent === undefined ? undefined : remotes.get(parent)) ?? "unknown";
    // Node verifies the client certificate after the handshake and, with rejectUnauthorized,
    // destroys the socket: the verification result is then `authorizationError`, not `err`.
    const code = socket.authorizationError === null || socket.authorizationError === undefined ? err.code : String(socket.authorizationError);
    const reason = tlsRefusalReason(code);
    refusals.record("inbound", remote, reason, refusalDetail(reason, code));
  });
  const peers = new WeakMap<ServerHttp2Session, SessionPeer>();
  const sessions = new Set<ServerHttp2Session>();
  let total = 0;
  server.on("session", (session: ServerHttp2Session) => {
    total++;
    session.on("error", () => undefined); // surfaced on its streams; a broken session just closes
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    peers.set(session, sessionPeer(session));
    // The connection-level window is not a SETTINGS value: without this every stream of the
    // session shares the default 64 KiB per round trip (a server session never emits "connect").
    session.setLocalWindowSize(SESSION_WINDOW_BYTES);
  });
  server.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const peer = peers.get(stream.session as ServerHttp2Session);
    void handleStream(stream, headers, peer, { ...opts, refusals, budget, hasher }).catch(() => {
      reply(stream, 500, "INTERNAL", "Internal error", "internal error; nothing was acknowledged");
    });
  });
  server.setTimeout(opts.idleTimeoutMs ?? 120_000);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  return {
    address: joinHostPort(bound.address, bound.port),
    refused: () => refusals.list(),
    sessions: () => ({ open: sessions.size, total }),
    close: async () => {
      await closeServer(server, sessions);
      await hasher.close();
    },
  };
}

function closeServer(server: http2.Http2SecureServer, sessions: Set<ServerHttp2Session>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // close() waits for open sessions; a peer's idle reused session must not hold shutdown.
    for (const s of sessions) s.destroy();
  });
}

function sessionPeer(session: ServerHttp2Session): SessionPeer {
  const socket = session.socket as TLSSocket;
  const cert = socket.getPeerX509Certificate();
  // The one identity rule (src/pki certIdentity): the one CN, the same as the sender's checkServerIdentity.
  const identity = cert === undefined ? undefined : x509Identity(cert);
  const cn = identity?.ok === true ? identity.id : undefined;
  const fingerprint = cert === undefined ? "" : `sha256:${createHash("sha256").update(cert.raw).digest("hex")}`;
  return { cn, fingerprint, remote: socket.remoteAddress ?? "unknown", ...(identity?.ok === false ? { ambiguous: identity.reason } : {}) };
}

interface HandleDeps {
  peers: PeerList;
  sink: SegmentSink;
  maxSegmentBytes: number;
  refusals: RefusalLog;
  budget: ByteBudget;
  hasher: HashWorker;
  onError?: (err: unknown) => void;
}

async function handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, peer: SessionPeer | undefined, deps: HandleDeps): Promise<void> {
  stream.on("error", () => undefined); // a reset by the sender: nothing to answer
  const from = authorise(stream, peer, deps);
  if (from === undefined) return;
  const req = route(stream, headers, deps.maxSegmentBytes);
  if (req === undefined) return;
  // Reserve the body's size (the cap when none is declared) BEFORE a buffer is allocated:
  // a peer declaring many large bodies it never sends gets 503 (the sender retries later).
  const reserved = req.declared ?? deps.maxSegmentBytes;
  if (!deps.budget.take(reserved)) {
    reply(stream, 503, "RECEIVER_BUSY", "EdgeError", "this node is already receiving as many bytes as it holds in memory; nothing was read", { "retry-after": "1" }, "the sender retries the delivery");
    return;
  }
  try {
    await receive(stream, req, from, deps);
  } finally {
    deps.budget.give(reserved);
  }
}

async function receive(stream: ServerHttp2Stream, req: Route, from: PeerIdentity, deps: HandleDeps): Promise<void> {
  const bytes = await readBody(stream, req.id, deps.maxSegmentBytes, req.declared, deps.hasher);
  if (bytes === undefined) return;
  const info: SegmentInfo = { id: req.id, size: bytes.length, kind: req.kind };
  let ack: { duplicate: boolean; inbox_seq: number };
  try {
    ack = await deps.sink.accept(info, bytes, from);
  } catch (e) {
    deps.onError?.(e);
    replyError(stream, e);
    return;
  }
  reply(stream, 200, undefined, "", JSON.stringify({ segment_id: req.id, duplicate: ack.duplicate, inbox_seq: ack.inbox_seq }));
}

/** The sender must be a configured peer (its certificate already chains to the fleet CA). */
function authorise(stream: ServerHttp2Stream, peer: SessionPeer | undefined, deps: HandleDeps): PeerIdentity | undefined {
  const list = typeof deps.peers === "function" ? deps.peers() : deps.peers;
  if (peer?.cn !== undefined && list.some((p) => p.id === peer.cn)) return { id: peer.cn, cert_fingerprint: peer.fingerprint };
  const named = peer?.cn !== undefined ? `certificate CN=${JSON.stringify(peer.cn)}` : peer?.ambiguous !== undefined ? `a certificate naming no single node (${peer.ambiguous})` : "a certificate without a single CN";
  deps.refusals.record("inbound", peer?.remote ?? "unknown", "UNKNOWN_PEER", refusalDetail("UNKNOWN_PEER", undefined, `${named} (${peer?.fingerprint ?? "no fingerprint"})`));
  reply(stream, 403, "UNKNOWN_PEER", "EdgeError", `${named} is not a configured peer of this node`, undefined, "add the sender under [[peers]] in this node's edge.toml");
  return undefined;
}

interface Route {
  id: string;
  kind: SegmentKind;
  declared: number | undefined;
}

function route(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, max: number): Route | undefined {
  const path = headers[":path"] ?? "";
  if (!path.startsWith(SEGMENTS_PATH)) {
    reply(stream, 404, "NOT_FOUND", "Not found", `no route ${headers[":method"] ?? ""} ${path.split("?")[0] ?? ""}`);
    return undefined;
  }
  if (headers[":method"] !== "PUT") {
    reply(stream, 405, "METHOD_NOT_ALLOWED", "Method not allowed", "segments are sent with PUT", { allow: "PUT" });
    return undefined;
  }
  const id = path.slice(SEGMENTS_PATH.length);
  // The id is never joined into a path here (the sink is content-addressed by the verified
  // digest); anything but 64 lowercase hex characters is refused before a byte is read.
  if (!SEGMENT_ID_RE.test(id)) {
    reply(stream, 400, "REQUEST_INVALID", "Malformed request", "the segment id must be 64 lowercase hex characters (the SHA-256 of the bytes)");
    return undefined;
  }
  const kind = headers[KIND_HEADER];
  if (typeof kind !== "string" || !(SEGMENT_KINDS as readonly string[]).includes(kind)) {
    reply(stream, 400, "REQUEST_INVALID", "Malformed request", `header ${KIND_HEADER} must be ${SEGMENT_KINDS.join(" or ")}`);
    return undefined;
  }
  const cl = headers["content-length"];
  const declared = cl === undefined ? undefined : Number(cl);
  if (declared !== undefined && !(Number.isSafeInteger(declared) && declared >= 0)) {
    reply(stream, 400, "REQUEST_INVALID", "Malformed request", "content-length must be a non-negative integer");
    return undefined;
  }
  if (declared !== undefined && declared > max) {
    tooLarge(stream, max, declared);
    return undefined;
  }
  return { id, kind: kind as SegmentKind, declared };
}

function tooLarge(stream: ServerHttp2Stream, max: number, size: number | undefined): void {
  const what = size === undefined ? "the segment runs over" : `the segment (${size} bytes) exceeds`;
  reply(stream, 413, "SEGMENT_TOO_LARGE", "EdgeError", `${what} this node's limit of ${max} bytes`, undefined, "split the content or raise [relay] max_segment_bytes on both sides");
}

/** Declared bodies of at least this size are hashed on the worker thread; below it a message round trip costs more than the hash. */
export const OFF_THREAD_HASH_BYTES = 256 * 1024;

/**
 * Reads the body with a hard cap, hashing as it arrives. Undefined (after
 * answering) when it runs over the cap, was cut short or does not match its id.
 * With a declared length (our client always sends one) a SegmentAssembler
 * copies the bytes into one buffer of that size while they are hashed (on the
 * worker thread for large bodies), and marks the result verified, so the
 * segment store neither copies nor hashes it again; without one, the chunks
 * are kept and joined at the end.
 */
function readBody(stream: ServerHttp2Stream, id: string, max: number, declared: number | undefined, hasher: HashWorker): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const ranges = declared !== undefined && declared >= OFF_THREAD_HASH_BYTES ? hasher.open(declared) : undefined;
    const asm = declared === undefined ? undefined : new SegmentAssembler(declared, ranges);
    const hash = asm === undefined ? createHash("sha256") : undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (v: Buffer | undefined): void => {
      if (done) return;
      done = true;
      stream.off("data", onData);
      if (v === undefined) ranges?.drop();
      resolve(v);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > max) {
        chunks.length = 0;
        tooLarge(stream, max, undefined);
        finish(undefined);
        return;
      }
      if (asm !== undefined) {
        if (!asm.append(chunk)) {
          reply(stream, 400, "REQUEST_INVALID", "Malformed request", `the body runs over its content-length of ${asm.size} bytes`);
          finish(undefined);
        }
        return;
      }
      hash?.update(chunk);
      chunks.push(chunk);
    };
    const onEnd = async (): Promise<void> => {
      if (done) return;
      if (declared !== undefined && declared !== size) {
        reply(stream, 400, "REQUEST_INVALID", "Malformed request", `content-length said ${declared} bytes, the body had ${size}`);
        finish(undefined);
        return;
      }
      const got = asm !== undefined ? await asm.settle(id) : { digest: hash?.digest("hex") ?? "", bytes: undefined };
      if (got.digest !== id) {
        reply(stream, 422, "RELAY_DIGEST_MISMATCH", "EdgeError", `the body's SHA-256 is ${got.digest}, not the segment id ${id}: the bytes changed in transit; nothing was stored`, undefined, "the sender retries the delivery");
        finish(undefined);
      } else {
        finish(got.bytes ?? (chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size)));
      }
    };
    stream.on("data", onData);
    stream.once("end", () => {
      onEnd().catch(() => {
        // The hashing worker failed: nothing was verified, so nothing is stored or acknowledged (the sender retries).
        reply(stream, 500, "INTERNAL", "Internal error", "the segment could not be verified; nothing was acknowledged");
        finish(undefined);
      });
    });
    stream.once("close", () => finish(undefined));
  });
}

function replyError(stream: ServerHttp2Stream, e: unknown): void {
  if (e instanceof EdgeError && e.code === "STORAGE_CEILING_EXCEEDED") {
    reply(stream, 507, e.code, "EdgeError", "this node's segment store is full of undelivered segments; try again later", undefined, e.hint);
  } else if (e instanceof EdgeError && e.code === "SEGMENT_TOO_LARGE") {
    reply(stream, 413, e.code, "EdgeError", e.message, undefined, e.hint);
  } else if (e instanceof AutonomyError) {
    // The code is stable and safe to send; the message may name local paths.
    reply(stream, 500, String(e.code), e.name, "the segment could not be stored; nothing was acknowledged (see the receiver's log)");
  } else {
    reply(stream, 500, "INTERNAL", "Internal error", "internal error; nothing was acknowledged (see the receiver's log)");
  }
}

/** Answers once; a 200 carries `json`, anything else a problem document. Ends the stream early when the body is still coming. */
function reply(stream: ServerHttp2Stream, status: number, code: string | undefined, title: string, detail: string, extra?: Record<string, string>, hint?: string): void {
  if (stream.headersSent || stream.destroyed || stream.closed) return;
  const body = code === undefined ? detail : problemBody(status, code, title, detail, hint);
  stream.respond({ ":status": status, "content-type": code === undefined ? "application/json" : PROBLEM_CONTENT_TYPE, ...(extra ?? {}) });
  // An early answer (the body was refused before it was read) resets the request
  // half with NO_ERROR once the answer is out, so the sender stops (RFC 9113 §8.1).
  // After a complete request the stream simply ends (a reset there races the answer's DATA).
  const early = !stream.readableEnded;
  stream.end(body, () => {
    if (early && !stream.closed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
  });
}
