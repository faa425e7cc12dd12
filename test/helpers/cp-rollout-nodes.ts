/**
 * Small virtual nodes for the rollout tests (the fleet simulator is another
 * helper's): each polls GET /v1/releases/latest with its node credential and
 * If-None-Match, and on a new release acks its path (polled, then activated
 * or activate_failed, or nothing more when hanging), and heartbeats the
 * release it runs. `via` sends a request: app.inject in-process, or real HTTP.
 */
import type { AckRequest, HeartbeatRequest } from "../../src/cpapi/index.js";

export type NodeMode = "ok" | "fail" | "hang";

export interface Via {
  (req: { method: "GET" | "POST"; url: string; token: string; body?: unknown; headers?: Record<string, string> }): Promise<{ status: number; etag: string | undefined; json: unknown }>;
}

export class SimNode {
  etag: string | undefined;
  mode: NodeMode = "ok";
  constructor(
    readonly nodeId: string,
    readonly cred: string,
    private readonly via: Via,
    private readonly now: () => number,
    public running: string | null,
  ) {}

  private async ack(release_id: string, phase: AckRequest["phase"], detail = ""): Promise<number> {
    const body: Partial<AckRequest> = { release_id, phase, detail, at: new Date(this.now()).toISOString() };
    return (await this.via({ method: "POST", url: `/v1/nodes/${this.nodeId}/ack`, token: this.cred, body })).status;
  }

  async heartbeat(): Promise<void> {
    const body: HeartbeatRequest = { release_id: this.running, activation_sequence: null, lock_fingerprint: null, boot_epoch: 1, wal_generation: null, runtime_version: "0.1.0" };
    const r = await this.via({ method: "POST", url: `/v1/nodes/${this.nodeId}/heartbeat`, token: this.cred, body });
    if (r.status !== 200) throw new Error(`heartbeat ${this.nodeId}: ${r.status} ${JSON.stringify(r.json)}`);
  }

  /** One poll (and what follows it); returns the desired release id the server answered. */
  async step(): Promise<string | undefined> {
    const r = await this.via({ method: "GET", url: "/v1/releases/latest?channel=stable", token: this.cred, headers: this.etag ? { "if-none-match": this.etag } : {} });
    if (r.status === 200) {
      this.etag = r.etag;
      const release = (r.json as { release_id: string }).release_id;
      if (release !== this.running) {
        if ((await this.ack(release, "polled")) === 200) {
          if (this.mode === "ok") {
            await this.ack(release, "activated");
            this.running = release;
          } else if (this.mode === "fail") await this.ack(release, "activate_failed", "ACTIVATE_FAILED: injected");
        }
      }
    }
    await this.heartbeat();
    return this.etag?.replaceAll('"', "");
  }
}
