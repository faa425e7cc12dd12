/**
 * A receiver's inbox as its relay ledger holds it (src/edge/relay/ledger.ts,
 * `{state_root}/edge/relay/ledger.lmdb`), read after its edged stopped: which
 * segments reached the application, each once, and how many further pushes
 * of the same segment the receiver acknowledged again without delivering.
 */
import { join } from "node:path";
import * as edge from "../../edge/index.js";
import { ProofError } from "../errors.js";

export interface LabInboxEntry {
  seq: number;
  segment_id: string;
  size: number;
  duplicates: number;
}

interface LedgerLike {
  inbox(afterSeq: number, limit: number): LabInboxEntry[];
  close(): Promise<void>;
}
type OpenLedger = (path: string) => Promise<LedgerLike>;

/** Every inbox entry, in sequence order. */
export async function readInbox(stateRoot: string): Promise<LabInboxEntry[]> {
  // The ledger (helper L's part of issue 11) is looked up at run time: until it is on main, a lab says so here instead of guessing.
  const open = (edge as Record<string, unknown>)["openRelayLedger"] as OpenLedger | undefined;
  if (typeof open !== "function") {
    throw new ProofError("PROOF_SETUP_FAILED", "this build has no relay ledger (openRelayLedger): the receiver's inbox cannot be read", { hint: "build with the relay ledger (src/edge/relay/ledger.ts)" });
  }
  const ledger = await open(join(stateRoot, "edge", "relay", "ledger.lmdb"));
  try {
    const out: LabInboxEntry[] = [];
    for (let after = 0; ; ) {
      const page = ledger.inbox(after, 1000);
      if (page.length === 0) return out;
      out.push(...page.map((e) => ({ seq: e.seq, segment_id: e.segment_id, size: e.size, duplicates: e.duplicates })));
      after = page[page.length - 1]?.seq ?? after;
    }
  } finally {
    await ledger.close();
  }
}
