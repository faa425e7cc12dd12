import { EdgeError } from "../../src/edge/index.js";
import type { PeerConfig, PeerTransport, PushResult, SegmentInfo } from "../../src/edge/index.js";

/** What a scripted peer does with one push. */
type Outcome = "ack" | "hang" | { fail: string; retryable?: boolean; sent?: number } | { ackAfterMs: number };
export type PeerBehaviour = Outcome | ((segment: SegmentInfo, attempt: number) => Outcome);

/**
 * A test double of PeerTransport (the real one is src/edge/relay/transport,
 * HTTP/2 with mTLS): each peer acks, fails with a RELAY_* code, or hangs until
 * the push is aborted. It keeps what every peer received, once per segment
 * (like the receiver's inbox), and how many pushes each segment got.
 */
export class PeerTransportDouble implements PeerTransport {
  readonly received = new Map<string, string[]>();
  readonly pushes = new Map<string, number>();
  readonly behaviour = new Map<string, PeerBehaviour>();
  hanging = 0;

  constructor(initial: Record<string, PeerBehaviour> = {}) {
    for (const [peer, b] of Object.entries(initial)) this.behaviour.set(peer, b);
  }

  async push(peer: PeerConfig, segment: SegmentInfo, bytes: Uint8Array, signal?: AbortSignal): Promise<PushResult> {
    if (bytes.length !== segment.size) throw new Error(`double: ${bytes.length} bytes for a segment of ${segment.size}`);
    const k = `${peer.id}/${segment.id}`;
    const attempt = (this.pushes.get(k) ?? 0) + 1;
    this.pushes.set(k, attempt);
    const b = this.behaviour.get(peer.id) ?? "ack";
    const what = typeof b === "function" ? b(segment, attempt) : b;
    await Promise.resolve();
    if (what === "hang") return this.hang(signal);
    if (typeof what === "object" && "ackAfterMs" in what) await this.slow(what.ackAfterMs, signal);
    else if (what !== "ack") throw new EdgeError(what.fail as "RELAY_PEER_UNREACHABLE", `double: peer ${peer.id} fails with ${what.fail}`, { details: { retryable: what.retryable ?? true, ...(what.sent === undefined ? {} : { body_bytes_sent: what.sent }) } });
    const got = this.received.get(peer.id) ?? [];
    const duplicate = got.includes(segment.id);
    if (!duplicate) this.received.set(peer.id, [...got, segment.id]);
    return { duplicate };
  }

  private slow(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => {
        clearTimeout(t);
        reject(new EdgeError("RELAY_PEER_UNREACHABLE", "double: push aborted"));
      }, { once: true });
    });
  }

  private hang(signal?: AbortSignal): Promise<never> {
    this.hanging += 1;
    return new Promise((_, reject) => {
      signal?.addEventListener("abort", () => {
        this.hanging -= 1;
        reject(new EdgeError("RELAY_PEER_UNREACHABLE", "double: push aborted"));
      }, { once: true });
    });
  }

  async close(): Promise<void> {}
}
