/**
 * The invariants of the edged SIGKILL chaos test, read from both nodes' state
 * roots. A killed node is read while it is dead (its ledger and store as the
 * restart will find them); a node that was not killed keeps running and is
 * read beside it: the ledger through a read-only LMDB handle (a consistent
 * snapshot, nothing recovered or changed), the store's named files directly
 * (a segment's file never changes once named). Nothing here writes to either
 * state root, so the restart does its own recovery.
 *
 * Order matters when a node is live: the callers' answers are taken first,
 * then the sender's ledger, then the receiver's inbox. The receiver records a
 * segment before it acks it and never removes an inbox record, so an ack the
 * sender holds at its read is in the inbox at the later read.
 */
import { createHash } from "node:crypto";
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { RelayLedger } from "../../../src/edge/index.js";
import { stateRootPaths } from "../../../src/node/index.js";
import type { EdgedNode } from "./edged-pair.js";

/** Every segment the schedule tried to send: id (the SHA-256 of its bytes) → [n, size] (its bytes are segmentBytes(n, size)). */
export type Sent = Map<string, [number, number]>;

export interface Observed {
  /** Deliveries the sender's ledger holds inflight: with the sender dead, a kill cut a push short. */
  inflight: number;
  /** Segments in the receiver's store with no inbox record: a kill landed between the store and the inbox commit. */
  storedNotRecorded: number;
  /** Inbox records whose delivery the sender has not marked acked: a kill landed between the receiver's commit and the sender's ack. */
  recordedNotAcked: Set<string>;
  /** Pushes the receiver acknowledged as duplicates (retries after such kills), summed over the inbox. */
  duplicatePushes: number;
  ackedForPeer: number;
  delivered: boolean;
}

/**
 * Segments whose bytes in the receiver's store were read and hashed once:
 * id → size. Later rounds check that the file is still there with that size
 * (a named segment file is never rewritten), and `full` re-hashes them all.
 */
export type Verified = Map<string, number>;

const sha256 = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

/** A data segment's file in a store directory (src/edge/storage/names.ts: `<id>.<kind>`). */
const segmentFile = (dir: string, id: string): string => join(dir, `${id}.data`);

async function readSegment(dir: string, id: string): Promise<Buffer | Error> {
  return readFile(segmentFile(dir, id)).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
}

async function sizeOf(dir: string, id: string): Promise<number | undefined> {
  return stat(segmentFile(dir, id)).then((s) => s.size, () => undefined);
}

export interface CheckOptions {
  at: string;
  violations: string[];
  verified: Verified;
  /** Re-read and re-hash every acked segment, not only the newly acked ones (the end of the run). */
  full?: boolean;
}

export async function checkPair(sender: EdgedNode, receiver: EdgedNode, sent: Sent, callerAcked: ReadonlySet<string>, opts: CheckOptions): Promise<Observed> {
  const v = (m: string): void => void opts.violations.push(`${opts.at}: ${m}`);
  const sp = stateRootPaths(sender.root);
  const rp = stateRootPaths(receiver.root);
  const answered = [...callerAcked];
  const sLedger = RelayLedger.openReadOnly(sp.relayLedger);
  try {
    const deliveries = new Map(sLedger.deliveriesWhere((d) => d.peer_id === receiver.id).map((d) => [d.segment_id, d]));
    // Acknowledged to a `relay send` caller ⇒ in the sender's ledger, acked or still on its way with its bytes.
    let pending = 0;
    for (const id of answered) {
      const d = deliveries.get(id);
      if (d === undefined) v(`relay send acknowledged ${id} but the sender's ledger has no delivery of it`);
      else if (d.state === "deadletter") v(`relay send acknowledged ${id} and it went to DEADLETTER (${JSON.stringify(d.last_error)})`);
      else if (d.state !== "acked") {
        pending++;
        const got = await readSegment(sp.edgeSegments, id);
        if (got instanceof Error || sha256(got) !== id) v(`relay send acknowledged ${id}, still ${d.state}, but the sender's store cannot serve its bytes: ${String(got instanceof Error ? got.message : "other bytes")}`);
      }
    }
    const acked = [...deliveries.values()].filter((d) => d.state === "acked");
    const inflight = [...deliveries.values()].filter((d) => d.state === "inflight").length;
    const rLedger = RelayLedger.openReadOnly(rp.relayLedger);
    try {
      const inbox = rLedger.inbox(0, 1_000_000);
      const inboxCount = new Map<string, number>();
      for (const e of inbox) inboxCount.set(e.segment_id, (inboxCount.get(e.segment_id) ?? 0) + 1);
      // Delivered to the application at most once, and each entry has its bytes.
      for (const [id, c] of inboxCount) if (c > 1) v(`segment ${id} is in the receiver's inbox ${c} times (delivered twice to the application)`);
      for (const e of inbox) {
        if (!sent.has(e.segment_id)) v(`inbox entry ${e.seq} names ${e.segment_id}, which the schedule never sent`);
        else if ((await sizeOf(rp.edgeSegments, e.segment_id)) !== e.size) v(`inbox entry ${e.seq} (${e.segment_id}, ${e.size} B) has no such bytes in the receiver's store`);
      }
      const cursor = rLedger.cursor();
      if (cursor > inbox.length) v(`the application cursor ${cursor} is past the last inbox entry ${inbox.length}`);
      // Acked for the peer ⇒ stored there with exactly its bytes and recorded exactly once.
      for (const d of acked) {
        const id = d.segment_id;
        const want = sent.get(id);
        if (want === undefined) {
          v(`the sender acked ${id}, which the schedule never sent`);
          continue;
        }
        if ((inboxCount.get(id) ?? 0) !== 1) v(`segment ${id} is acked but in the receiver's inbox ${inboxCount.get(id) ?? 0} times`);
        const known = opts.verified.get(id);
        if (known !== undefined && opts.full !== true) {
          if ((await sizeOf(rp.edgeSegments, id)) !== known) v(`segment ${id} is acked and was verified, but is no longer in the receiver's store with its ${known} B`);
          continue;
        }
        const got = await readSegment(rp.edgeSegments, id);
        if (got instanceof Error) v(`segment ${id} is acked for ${receiver.id} but not readable in its store: ${got.message}`);
        else if (got.length !== want[1] || sha256(got) !== id) v(`segment ${id} is acked but the receiver holds other bytes`);
        else opts.verified.set(id, got.length);
      }
      const stored = await storedIds(rp.edgeSegments);
      return {
        inflight,
        storedNotRecorded: stored.filter((id) => !inboxCount.has(id)).length,
        recordedNotAcked: new Set(inbox.filter((e) => deliveries.get(e.segment_id)?.state !== "acked").map((e) => e.segment_id)),
        duplicatePushes: inbox.reduce((n, e) => n + e.duplicates, 0),
        ackedForPeer: acked.length,
        delivered: pending === 0,
      };
    } finally {
      await rLedger.close();
    }
  } finally {
    await sLedger.close();
  }
}

async function storedIds(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => /^[0-9a-f]{64}\.data$/.test(n)).map((n) => n.slice(0, 64));
}
