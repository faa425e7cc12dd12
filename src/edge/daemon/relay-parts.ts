import { readTlsIdentity } from "../../pki/index.js";
import { stateRootPaths } from "../../node/index.js";
import type { EdgeConfig } from "../config/schema.js";
import { createBandwidthLimiter } from "../relay/bandwidth.js";
import { RelayExecutor } from "../relay/executor.js";
import { ledgerSink, peerShareOf } from "../relay/inbox-sink.js";
import { removeOrphans } from "../relay/store-orphans.js";
import { openRelayLedger } from "../relay/ledger.js";
import type { RelayLedger } from "../relay/ledger.js";
import type { DeliveryRecord, RelayErrorInfo } from "../relay/ledger-records.js";
import { createPeerTransport } from "../relay/transport/client.js";
import { startRelayReceiver } from "../relay/transport/receiver.js";
import type { RelayReceiver } from "../relay/transport/receiver.js";
import { openSegmentStore, segmentIdOf } from "../storage/index.js";
import type { PeerTransport, RefusedPeer, SegmentStore } from "../types.js";
import type { DeadLetterDetail, DeadLetterEntry, QueueCounts, RelayErrorView } from "./control-types.js";
import type { EngineQueue, EngineStats, PartsContext, RelayEngine, RelayParts } from "./ports.js";
import type { RelayInbox } from "./relay-inbox.js";
import { listenFailure } from "./listen-errors.js";

/**
 * The real relay parts of one edged run: the segment store and the ledger
 * under the state root, the uplink's bandwidth limiter, the executor pushing
 * over the mTLS transport, and (when `[transport] listen` is set) the
 * receiver storing into the same store and ledger. Opened in that order;
 * anything opened is closed again when a later step fails.
 */
export async function openRelayParts(config: EdgeConfig, ctx: PartsContext): Promise<RelayParts> {
  const paths = stateRootPaths(config.node.stateRoot);
  const tls = await readTlsIdentity({ certFile: config.transport.certFile, keyFile: config.transport.keyFile, caFile: config.transport.caFile });
  const opened: (() => Promise<void>)[] = [];
  const closeAll = async (): Promise<void> => {
    for (const f of opened.reverse()) await f().catch((e: unknown) => ctx.log.error({ err: e }, "closing a relay part failed"));
    opened.length = 0;
  };
  try {
    const store = await openSegmentStore({ dir: paths.edgeSegments, ceilingBytes: config.storage.ceilingBytes, clock: ctx.clock });
    const ledger = await openRelayLedger(paths.relayLedger, { clock: ctx.clock });
    opened.push(() => ledger.close());
    // Before anything writes: bytes a kill left between the store's put and the ledger's record.
    for (const o of await removeOrphans(store, ledger)) ctx.log.warn({ event: "store_orphan_removed", segment_id: o.id, bytes: o.bytes }, "segment store: removed bytes no ledger record names (a crash between store and record)");
    // The day's quota use lives in the ledger, so a restart (or a crash loop) never grants a fresh quota.
    const bandwidth = createBandwidthLimiter({ ...config.bandwidth }, { clock: ctx.clock, quotaStore: { load: () => ledger.quotaDay(), save: (d) => ledger.saveQuotaDay(d) } });
    const transport = createPeerTransport({ tls, dialTimeoutMs: config.relay.dialTimeoutMs, ackTimeoutMs: config.relay.ackTimeoutMs, clock: ctx.clock });
    opened.push(() => transport.close());
    const counted = countingTransport(transport);
    const executor = new RelayExecutor({
      ledger, store, transport: counted.transport, bandwidth, peers: config.peers,
      config: { ...config.relay, scheduler: config.scheduler, deadletterRetentionMs: config.storage.deadletterRetentionMs },
      clock: ctx.clock, log: ctx.log,
    });
    let receiver: RelayReceiver | undefined;
    if (config.transport.listen !== undefined) {
      receiver = await startRelayReceiver({ listen: config.transport.listen, tls, peers: config.peers, sink: ledgerSink(ledger, store, { peerShareBytes: peerShareOf(config.storage.ceilingBytes, config.peers.length, config.relay.maxSegmentBytes) }), maxSegmentBytes: config.relay.maxSegmentBytes, clock: ctx.clock,
        // A sink failure is answered with a bare 5xx; its cause belongs in edged's log.
        onError: (err) => ctx.log.error({ event: "receiver_sink_failed", err }, "storing a received segment failed"),
      }).catch((e: unknown) => {
        throw listenFailure(e, "[transport] listen", String(config.transport.listen));
      });
      const r = receiver;
      opened.push(() => r.close());
    }
    return {
      store,
      bandwidth,
      engine: executorEngine(executor, ledger, store, counted.stats),
      inbox: ledgerInbox(ledger),
      refused: () => [...(receiver?.refused() ?? []), ...transport.refused()].sort((a: RefusedPeer, b: RefusedPeer) => b.at.localeCompare(a.at)),
      ...(receiver ? { receiverAddress: receiver.address } : {}),
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** Counts what the wire confirms: acknowledged pushes and their bytes, failed pushes. */
function countingTransport(inner: PeerTransport): { transport: PeerTransport; stats: Omit<EngineStats, "delivered_total"> } {
  const stats = { pushes_acked_total: 0, failed_attempts_total: 0, bytes_sent_total: 0 };
  return {
    stats,
    transport: {
      async push(peer, segment, bytes, signal) {
        try {
          const r = await inner.push(peer, segment, bytes, signal);
          stats.pushes_acked_total += 1;
          stats.bytes_sent_total += segment.size;
          return r;
        } catch (e) {
          // An abort on stop is not a failed attempt (the executor puts it back to scheduled).
          if (!signal?.aborted) stats.failed_attempts_total += 1;
          throw e;
        }
      },
      close: () => inner.close(),
    },
  };
}

function withTotal(q: Record<"scheduled" | "inflight" | "acked" | "failed" | "deadletter", number>): QueueCounts {
  return { ...q, total: q.scheduled + q.inflight + q.acked + q.failed + q.deadletter };
}

function errorView(e: (RelayErrorInfo & { at: string; segment_id: string }) | null, peer: string): RelayErrorView | null {
  return e === null ? null : { code: e.code, message: e.message, peer_id: peer, segment_id: e.segment_id, at: e.at };
}

function executorEngine(executor: RelayExecutor, ledger: RelayLedger, store: SegmentStore, wire: Omit<EngineStats, "delivered_total">): RelayEngine {
  const entry = (d: DeliveryRecord): DeadLetterEntry => {
    const info = ledger.segment(d.segment_id)?.info;
    return {
      segment_id: d.segment_id, peer_id: d.peer_id, kind: info?.kind ?? "data", size: info?.size ?? 0, attempts: d.attempts,
      first_queued_at: d.first_queued_at, last_updated_at: d.updated_at, last_error: d.last_error,
    };
  };
  return {
    start: () => executor.start(),
    stop: () => executor.stop(),
    async enqueue(bytes, kind) {
      const had = store.has(segmentIdOf(bytes));
      const info = await executor.enqueue(bytes, kind);
      return { ...info, created: !had };
    },
    queue(): EngineQueue {
      const s = executor.status();
      const peers: EngineQueue["peers"] = {};
      let last: RelayErrorView | null = null;
      for (const p of s.peers) {
        const err = errorView(p.last_error, p.id);
        peers[p.id] = { queue: withTotal(p.queue), last_error: err };
        if (err && (last === null || err.at > last.at)) last = err;
      }
      return { overall: withTotal(s.queue), peers, last_error: last, peer_settlements: s.peer_settlements };
    },
    stats: () => ({ delivered_total: executor.status().delivered_segments, ...wire }),
    deadletterList: (limit) => Promise.resolve(executor.deadletters(limit).map(entry)),
    deadletterInspect(seg, peer): Promise<DeadLetterDetail> {
      const d = executor.inspect(seg, peer);
      return Promise.resolve({ ...entry(d), state: d.state, history: d.history.map((h) => ({ started: h.started, completed: h.completed, outcome: h.outcome ?? "inflight", error: h.error })), segment_present: store.has(seg) });
    },
    async deadletterRetry(seg, peer) {
      const d = await executor.retry(seg, peer);
      return { segment_id: d.segment_id, peer_id: d.peer_id, state: d.state };
    },
    bandwidthChanged: () => executor.resumeQuotaDeferred(),
    async deadletterPurge(req) {
      const r = await executor.purge({ force: req.force, ...(req.segment_id ? { segment_id: req.segment_id } : {}), ...(req.peer_id ? { peer_id: req.peer_id } : {}) });
      return { dry_run: r.dry_run, matched: r.purged.map((p) => ({ segment_id: p.segment_id, peer_id: p.peer_id })), purged: r.dry_run ? 0 : r.purged.length };
    },
  };
}

/** The ledger's inbox as the daemon applies it (cursor, and the durable record of entries passed without being applied). */
export function ledgerInbox(ledger: RelayLedger): RelayInbox {
  return {
    inbox: (after, limit) => Promise.resolve(ledger.inbox(after, limit).map((e) => ({ seq: e.seq, segment: { id: e.segment_id, size: e.size, kind: e.kind }, from: e.from.id }))),
    applicationCursor: () => Promise.resolve(ledger.cursor()),
    advanceApplicationCursor: async (seq) => {
      await ledger.advanceCursor(seq);
    },
    passEntry: (r) => ledger.passInboxEntry(r),
    rejections: () => ledger.inboxRejections(),
  };
}
