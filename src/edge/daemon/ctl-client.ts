import { request } from "node:http";
import { errnoCode } from "../../lib/index.js";
import { EDGE_ERROR_CODES, EdgeError } from "../errors.js";
import type { EdgeErrorCode } from "../errors.js";
import type { SegmentInfo, SegmentKind, StoreVerifyReport } from "../types.js";
import type {
  BandwidthApplied, BandwidthChange, DeadLetterDetail, DeadLetterEntry, DeadLetterRetried, PurgeRequest, DeadLetterPurgeResult, RelayConfigView, RelayStatusView,
} from "./control-types.js";
import { DEFAULT_CONTROL_SOCKET } from "./control-socket.js";
import { trustedSocketPath } from "./socket-trust.js";

export interface ControlClientOptions {
  /** The control socket edged listens on. Default {@link DEFAULT_CONTROL_SOCKET}. */
  socketPath?: string;
  /** Per-request timeout (ms). Default 30 s (an enqueue of a large segment writes it durably first). */
  timeoutMs?: number;
  /**
   * Uids besides the current user and root that may own the socket and its
   * directory (edged under a dedicated account). Every request first checks
   * the socket's owner, type and directory (CONTROL_SOCKET_UNTRUSTED).
   */
  socketOwners?: readonly number[];
}

interface Reply {
  status: number;
  contentType: string;
  body: Buffer;
}

const EDGE_CODES: ReadonlySet<string> = new Set(EDGE_ERROR_CODES);

/**
 * A typed client of edged's control socket (what `edgectl` uses). A daemon
 * that is not there is CONTROL_SOCKET_UNAVAILABLE; an error answer becomes an
 * EdgeError with the server's code (CONTROL_REQUEST_FAILED, carrying
 * `remote_code`, when the code is not an edge one, like REQUEST_INVALID).
 * Before each request the socket is checked with {@link trustedSocketPath}:
 * a socket planted by another local user is CONTROL_SOCKET_UNTRUSTED (exit 4)
 * and receives nothing.
 *
 * ### Examples
 * ```ts
 * const ctl = new ControlClient({ socketPath: "/run/edged/ctl.sock" });
 * const status = await ctl.status();
 * ```
 */
export class ControlClient {
  readonly socketPath: string;
  readonly #timeoutMs: number;
  readonly #owners: readonly number[];

  constructor(opts: ControlClientOptions = {}) {
    this.socketPath = opts.socketPath ?? DEFAULT_CONTROL_SOCKET;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#owners = opts.socketOwners ?? [];
  }

  status(): Promise<RelayStatusView> {
    return this.#json("GET", "/v1/relay/status");
  }

  config(): Promise<RelayConfigView> {
    return this.#json("GET", "/v1/relay/config");
  }

  setBandwidth(change: BandwidthChange): Promise<BandwidthApplied> {
    return this.#json("POST", "/v1/relay/config/bandwidth", change);
  }

  async deadletterList(limit = 50): Promise<DeadLetterEntry[]> {
    const r = await this.#json<{ deadletters: DeadLetterEntry[] }>("GET", `/v1/relay/deadletter?limit=${encodeURIComponent(String(limit))}`);
    return r.deadletters;
  }

  deadletterInspect(segmentId: string, peerId: string): Promise<DeadLetterDetail> {
    return this.#json("GET", `/v1/relay/deadletter/${encodeURIComponent(segmentId)}/${encodeURIComponent(peerId)}`);
  }

  deadletterRetry(segmentId: string, peerId: string): Promise<DeadLetterRetried> {
    return this.#json("POST", `/v1/relay/deadletter/${encodeURIComponent(segmentId)}/${encodeURIComponent(peerId)}/retry`, {});
  }

  deadletterPurge(req: PurgeRequest): Promise<DeadLetterPurgeResult> {
    return this.#json("POST", "/v1/relay/deadletter/purge", req);
  }

  async enqueue(bytes: Uint8Array, kind: SegmentKind = "data"): Promise<SegmentInfo & { created: boolean }> {
    const r = await this.#send("POST", `/v1/relay/segments?kind=${encodeURIComponent(kind)}`, "application/octet-stream", bytes);
    return this.#decode(r);
  }

  /** Scrubs the segment store (reads every segment: can take a while on a big store). */
  storageVerify(): Promise<StoreVerifyReport> {
    return this.#json("POST", "/v1/storage/verify", {});
  }

  async #json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return this.#decode<T>(await this.#send(method, path, "application/json", payload));
  }

  #decode<T>(r: Reply): T {
    let doc: unknown;
    try {
      doc = JSON.parse(r.body.toString("utf8"));
    } catch {
      throw new EdgeError("CONTROL_REQUEST_FAILED", `edged answered HTTP ${r.status} with a body that is not JSON`, { details: { status: r.status } });
    }
    if (r.status >= 400) throw errorOf(r.status, doc);
    return doc as T;
  }

  async #send(method: string, path: string, contentType: string, body: Uint8Array | undefined): Promise<Reply> {
    // Checked on every request, not once: edged may have restarted (a new socket) between two calls.
    const socketPath = await trustedSocketPath(this.socketPath, { owners: this.#owners });
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { accept: "application/json" };
      if (body !== undefined) {
        headers["content-type"] = contentType;
        headers["content-length"] = body.byteLength;
      }
      const req = request({ socketPath, method, path, headers, timeout: this.#timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers["content-type"] ?? ""), body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new EdgeError("CONTROL_REQUEST_FAILED", `edged did not answer ${method} ${path} within ${this.#timeoutMs} ms`)));
      req.on("error", (e) => reject(e instanceof EdgeError ? e : unavailable(this.socketPath, e)));
      req.end(body);
    });
  }
}

function unavailable(socketPath: string, e: unknown): EdgeError {
  const code = errnoCode(e);
  const why =
    code === "ENOENT" ? "no socket there (edged is not running, or listens elsewhere)"
    : code === "ECONNREFUSED" ? "nothing listens on it (edged stopped or was killed)"
    : code === "EACCES" ? "permission denied (the socket is 0600: run edgectl as the user edged runs as)"
    : `cannot connect (${code ?? "unknown error"})`;
  return new EdgeError("CONTROL_SOCKET_UNAVAILABLE", `edged control socket ${socketPath}: ${why}`, { cause: e, details: { socket: socketPath } });
}

function errorOf(status: number, doc: unknown): EdgeError {
  const p = (typeof doc === "object" && doc !== null ? doc : {}) as { code?: unknown; detail?: unknown; hint?: unknown };
  const code = typeof p.code === "string" ? p.code : "INTERNAL";
  const detail = typeof p.detail === "string" ? p.detail : `HTTP ${status}`;
  const hint = typeof p.hint === "string" ? p.hint : undefined;
  if (EDGE_CODES.has(code)) return new EdgeError(code as EdgeErrorCode, detail, { ...(hint === undefined ? {} : { hint }), details: { status } });
  return new EdgeError("CONTROL_REQUEST_FAILED", `edged refused the request (${code}, HTTP ${status}): ${detail}`, { details: { status, remote_code: code } });
}
