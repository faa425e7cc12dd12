import { LIFECYCLE_EVENT_TYPE } from "../../cpapi/index.js";
import type { CpClient, LifecyclePhase } from "../../cpapi/index.js";
import { isoTime } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import type { WalAppender } from "../wal-sink.js";

/** What one lifecycle phase says; written to the WAL, and acked when it names a release. */
export interface PhaseFacts {
  release_id?: string | undefined;
  sequence?: number | undefined;
  lock_fingerprint?: string | null | undefined;
  /** For failures: the stable error code. */
  error_code?: string | undefined;
  /** One line: why (failures), or what was seen (polled). */
  detail?: string | undefined;
  /** Phase-specific fields (polled: outcome; activated: changed). */
  extra?: Record<string, unknown>;
}

/**
 * Every phase of a release's way onto this node, in order: first an
 * `ai.deployment.lifecycle` event appended to the node's WAL (durable, so the
 * node's own record exists whatever the control plane knows; the exporter
 * ships it like any event), then `POST /v1/nodes/{id}/ack` so the control
 * plane shows the node's path. Acks are sent one at a time, in phase order;
 * a failed ack is counted, not retried (the WAL event stays the record).
 */
export class LifecycleReporter {
  readonly #wal: WalAppender;
  readonly #client: CpClient;
  readonly #nodeId: string;
  readonly #clock: Clock;
  ackFailures = 0;
  walFailures = 0;

  constructor(o: { wal: WalAppender; client: CpClient; nodeId: string; clock: Clock }) {
    this.#wal = o.wal;
    this.#client = o.client;
    this.#nodeId = o.nodeId;
    this.#clock = o.clock;
  }

  async phase(phase: LifecyclePhase, f: PhaseFacts): Promise<void> {
    const at = isoTime(this.#clock);
    const event: Record<string, unknown> = {
      type: LIFECYCLE_EVENT_TYPE, phase, timestamp: at, node_id: this.#nodeId,
      release_id: f.release_id ?? null, sequence: f.sequence ?? null, lock_fingerprint: f.lock_fingerprint ?? null,
      ...(f.error_code !== undefined ? { error_code: f.error_code } : {}),
      ...(f.detail !== undefined ? { detail: f.detail } : {}),
      ...f.extra,
    };
    // A WAL that cannot take the event (disk full, reopening) must not stop the poller:
    // the node keeps enforcing its policy; LiveWal reopens itself and later phases are written.
    await this.#wal.append(event).catch(() => void (this.walFailures += 1));
    if (f.release_id === undefined) return;
    const detail = [f.error_code, f.detail].filter((s) => s !== undefined && s !== "").join(": ").slice(0, 1024);
    await this.#client
      .ack(this.#nodeId, { release_id: f.release_id, phase, lock_fingerprint: f.lock_fingerprint ?? null, detail, at })
      .catch(() => void (this.ackFailures += 1));
  }
}
