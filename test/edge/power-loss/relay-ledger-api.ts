/**
 * The relay ledger's API as the real-ledger power-loss workload uses it
 * (helper L's src/edge/relay/ledger.ts, exported from src/edge/index.ts),
 * loaded at run time: this harness was written before the ledger reached
 * main, and must compile without it. When the ledger is missing the workload
 * fails saying so (the test then fails; it never skips).
 */
import type { PeerIdentity, SegmentInfo, SuccessCondition } from "../../../src/edge/index.js";

export interface LedgerUnderTest {
  schedule(info: SegmentInfo, peers: readonly string[], condition: SuccessCondition): Promise<unknown>;
  delivery(segment: string, peer: string): { state: string } | undefined;
  begin(segment: string, peer: string): Promise<unknown>;
  ack(segment: string, peer: string, duplicate: boolean): Promise<unknown>;
  receive(info: SegmentInfo, from: PeerIdentity): Promise<{ duplicate: boolean; inbox_seq: number }>;
  advanceCursor(seq: number): Promise<number>;
  segmentsList(): { info: SegmentInfo }[];
  deliveriesWhere(): { segment_id: string; peer_id: string; state: string }[];
  inbox(afterSeq: number, limit: number): { seq: number; segment_id: string }[];
  cursor(): number;
  close(): Promise<void>;
}

export async function openLedgerUnderTest(path: string): Promise<LedgerUnderTest> {
  // A variable specifier: TypeScript does not resolve it, so this file compiles before the ledger exists.
  const spec = "../../../src/edge/index.js";
  const edge = (await import(spec)) as { openRelayLedger?: (p: string) => Promise<LedgerUnderTest> };
  if (typeof edge.openRelayLedger !== "function") throw new Error("the relay ledger is not on this branch yet: src/edge/index.ts exports no openRelayLedger (helper L's src/edge/relay/ledger.ts)");
  return edge.openRelayLedger(path);
}
