/**
 * The relay ledger under test (src/edge/relay/ledger.ts), opened as edged opens
 * it. One seam, so the workload and the checker open it the same way.
 */
import { openRelayLedger } from "../../../src/edge/index.js";
import type { RelayLedger } from "../../../src/edge/index.js";

export function openLedgerUnderTest(path: string): Promise<RelayLedger> {
  return openRelayLedger(path);
}
