/**
 * The relay labs' view of edged's control socket (HTTP/1.1 over a unix
 * socket, the wire of docs/edge.md): only the calls and fields the suites
 * measure with. It speaks the documented wire rather than importing edgectl's
 * client so that a lab measures the daemon as any operator tool would see it.
 */
import { request } from "node:http";

export type DeliveryStateName = "scheduled" | "inflight" | "acked" | "failed" | "deadletter";
export type Queue = Record<DeliveryStateName, number> & { total: number };

export interface LabStatus {
  node_id: string;
  queue: Queue;
  peers: { peer_id: string; address: string; queue: Queue; last_error: { code: string; message: string } | null }[];
  bandwidth: {
    bytes_per_second: number; daily_quota_bytes: number; unlimited: boolean; available_tokens: number; daily_used_bytes: number;
    throttle_count: number; quota_drop_count: number;
  };
  store: { used_bytes: number; ceiling_bytes: number; segments: number; evictions: { count: number; bytes: number; by_reason: Record<string, number> } };
  config: { config_reload_error: string | null; restart_required: string[] };
}

export interface LabDeadLetter {
  segment_id: string;
  peer_id: string;
  attempts: number;
}

export interface LabPurge {
  dry_run: boolean;
  matched: { segment_id: string; peer_id: string }[];
  purged: number;
}

export class LabCtlError extends Error {
  constructor(message: string, readonly status: number, readonly code: string) {
    super(message);
  }
}

/** One edged's control socket. */
export class LabCtl {
  constructor(readonly socketPath: string, private readonly timeoutMs = 30_000) {}

  status(): Promise<LabStatus> {
    return this.json("GET", "/v1/relay/status");
  }

  config(): Promise<{ bandwidth: { bytes_per_second: number; daily_quota_bytes: number } }> {
    return this.json("GET", "/v1/relay/config");
  }

  setBandwidth(change: { bytes_per_second?: number; daily_quota_bytes?: number }): Promise<{ applied: boolean; bandwidth: { bytes_per_second: number; daily_quota_bytes: number } }> {
    return this.json("POST", "/v1/relay/config/bandwidth", change);
  }

  async deadletters(limit = 10_000): Promise<LabDeadLetter[]> {
    return (await this.json<{ deadletters: LabDeadLetter[] }>("GET", `/v1/relay/deadletter?limit=${limit}`)).deadletters;
  }

  retry(segmentId: string, peerId: string): Promise<{ state: string }> {
    return this.json("POST", `/v1/relay/deadletter/${segmentId}/${encodeURIComponent(peerId)}/retry`, {});
  }

  purge(req: { segment_id?: string; peer_id?: string; force: boolean }): Promise<LabPurge> {
    return this.json("POST", "/v1/relay/deadletter/purge", req);
  }

  async enqueue(bytes: Uint8Array): Promise<{ id: string; size: number; created: boolean }> {
    return this.decode(await this.send("POST", "/v1/relay/segments?kind=data", "application/octet-stream", bytes));
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.decode<T>(await this.send(method, path, "application/json", body === undefined ? undefined : Buffer.from(JSON.stringify(body))));
  }

  private decode<T>(r: { status: number; body: Buffer }): T {
    let doc: unknown;
    try {
      doc = JSON.parse(r.body.toString("utf8"));
    } catch {
      throw new LabCtlError(`edged answered HTTP ${r.status} with a body that is not JSON`, r.status, "NOT_JSON");
    }
    if (r.status >= 400) {
      const p = doc as { code?: string; detail?: string };
      throw new LabCtlError(`edged: ${p.code ?? "?"}: ${p.detail ?? `HTTP ${r.status}`}`, r.status, p.code ?? "UNKNOWN");
    }
    return doc as T;
  }

  private send(method: string, path: string, contentType: string, body: Uint8Array | undefined): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string | number> = { accept: "application/json" };
      if (body !== undefined) {
        headers["content-type"] = contentType;
        headers["content-length"] = body.byteLength;
      }
      const req = request({ socketPath: this.socketPath, method, path, headers, timeout: this.timeoutMs }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new LabCtlError(`edged did not answer ${method} ${path} within ${this.timeoutMs} ms`, 0, "TIMEOUT")));
      req.on("error", reject);
      req.end(body);
    });
  }
}
