/**
 * The invariants of the edged SIGKILL chaos test, read from both nodes' state
 * roots while both processes are dead (the ledger and store a restart sees).
 */
import { createHash } from "node:crypto";
import { openRelayLedger, openSegmentStore } from "../../../src/edge/index.js";
import { stateRootPaths } from "../../../src/node/index.js";
import type { EdgedNode } from "./edged-pair.js";
import { segmentBytes } from "./segments.js";

/** Every segment the schedule tried to send: id → [n, size] (its bytes are segmentBytes(n, size)). */
export type Sent = Map<string, [number, number]>;

export interface Observed {
  /** Deliveries found inflight when the sender's ledger was reopened: a kill cut a push short. */
  midPush: number;
  /** Segments in the receiver's store with no inbox record: a kill landed between the store and the inbox commit. */
  storedNotRecorded: number;
  /** Inbox records whose delivery the sender has not marked acked: a kill landed between the receiver's commit and the sender's ack. */
  recordedNotAcked: Set<string>;
  /** Pushes the receiver acknowledged as duplicates (retries after such kills), summed over the inbox. */
  duplicatePushes: number;
  ackedForPeer: number;
  delivered: boolean;
}

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

export async function checkPair(sender: EdgedNode, receiver: EdgedNode, sent: Sent, callerAcked: ReadonlySet<string>, at: string, violations: string[]): Promise<Observed> {
  const v = (m: string): void => void violations.push(`${at}: ${m}`);
  const sp = stateRootPaths(sender.root);
  const rp = stateRootPaths(receiver.root);
  const sLedger = await openRelayLedger(sp.relayLedger);
  const rLedger = await openRelayLedger(rp.relayLedger);
  const sStore = await openSegmentStore({ dir: sp.edgeSegments, ceilingBytes: 1 << 30 });
  const rStore = await openSegmentStore({ dir: rp.edgeSegments, ceilingBytes: 1 << 30 });
  try {
    const expected = (id: string): Uint8Array | undefined => {
      const s = sent.get(id);
      return s === undefined ? undefined : segmentBytes(s[0], s[1]);
    };
    const inbox = rLedger.inbox(0, 1_000_000);
    const inboxCount = new Map<string, number>();
    for (const e of inbox) inboxCount.set(e.segment_id, (inboxCount.get(e.segment_id) ?? 0) + 1);
    // Delivered to the application at most once, and what it is handed reads back exactly.
    for (const [id, c] of inboxCount) if (c > 1) v(`segment ${id} is in the receiver's inbox ${c} times (delivered twice to the application)`);
    for (const e of inbox) {
      const want = expected(e.segment_id);
      if (want === undefined) v(`inbox entry ${e.seq} names ${e.segment_id}, which the schedule never sent`);
      else if (!rStore.has(e.segment_id)) v(`inbox entry ${e.seq} (${e.segment_id}) has no bytes in the receiver's store`);
    }
    // Acked for the peer ⇒ stored there with exactly its bytes and recorded exactly once.
    const acked = sLedger.deliveriesWhere((d) => d.peer_id === receiver.id && d.state === "acked");
    for (const d of acked) {
      const want = expected(d.segment_id);
      if (want === undefined) {
        v(`the sender acked ${d.segment_id}, which the schedule never sent`);
        continue;
      }
      const got = await rStore.get(d.segment_id).catch((e: unknown) => e);
      if (!(got instanceof Uint8Array)) v(`segment ${d.segment_id} is acked for ${receiver.id} but not readable in its store: ${String(got)}`);
      else if (sha256(got) !== sha256(want)) v(`segment ${d.segment_id} is acked but the receiver holds other bytes`);
      if ((inboxCount.get(d.segment_id) ?? 0) !== 1) v(`segment ${d.segment_id} is acked but in the receiver's inbox ${inboxCount.get(d.segment_id) ?? 0} times`);
    }
    // Acknowledged to a `relay send` caller ⇒ in the sender's ledger, acked or still on its way with its bytes.
    let pending = 0;
    for (const id of callerAcked) {
      const d = sLedger.delivery(id, receiver.id);
      if (d === undefined) v(`relay send acknowledged ${id} but the sender's ledger has no delivery of it`);
      else if (d.state === "deadletter") v(`relay send acknowledged ${id} and it went to DEADLETTER (${JSON.stringify(d.last_error)})`);
      else if (d.state !== "acked") {
        pending++;
        const got = await sStore.get(id).catch((e: unknown) => e);
        if (!(got instanceof Uint8Array) || sha256(got) !== id) v(`relay send acknowledged ${id}, still ${d.state}, but the sender's store cannot serve its bytes: ${String(got)}`);
      }
    }
    const recordedNotAcked = new Set(inbox.filter((e) => sLedger.delivery(e.segment_id, receiver.id)?.state !== "acked").map((e) => e.segment_id));
    return {
      midPush: sLedger.recovered.length,
      storedNotRecorded: rStore.list().filter((s) => !inboxCount.has(s.id)).length,
      recordedNotAcked,
      duplicatePushes: inbox.reduce((n, e) => n + e.duplicates, 0),
      ackedForPeer: acked.length,
      delivered: pending === 0,
    };
  } finally {
    await sLedger.close();
    await rLedger.close();
  }
}
