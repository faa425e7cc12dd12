/**
 * A receiver's inbox as its relay ledger holds it (src/edge/relay/ledger.ts,
 * `{state_root}/edge/relay/ledger.lmdb`), read after its edged stopped: which
 * segments reached the application, each once, and how many further pushes
 * of the same segment the receiver acknowledged again without delivering.
 */
import { openRelayLedger } from "../../edge/index.js";
import { stateRootPaths } from "../../node/index.js";

export interface LabInboxEntry {
  seq: number;
  segment_id: string;
  size: number;
  duplicates: number;
}

/** Every inbox entry, in sequence order. */
export async function readInbox(stateRoot: string): Promise<LabInboxEntry[]> {
  const ledger = await openRelayLedger(stateRootPaths(stateRoot).relayLedger);
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
