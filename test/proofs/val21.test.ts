/**
 * VAL21 (RL-QMGM-01) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant). The assertions are
 * test/helpers/relay-proof-suite.ts's, shared by every relay suite.
 */
import { describeRelayProof } from "../helpers/relay-proof-suite.js";

describeRelayProof({
  suite: "val21",
  claim: "RL-QMGM-01",
  title: "val21 (RL-QMGM-01) queue management",
  pass: {
    name: "80 × 64 B drained under a 40-segment ceiling: LRU evictions reconcile exactly, status = ledger after restart = receiver inbox",
    seed: 2121, devices: 80,
    checks: ["drained", "no_deadletters", "queue_accounting", "evictions", "evictions_reconcile", "evictions_all_lru", "evicted_bytes", "status_after_restart", "store_on_disk", "receiver_inbox"],
  },
  impossible: {
    name: "an impossible min_evictions fails that check, and only that one",
    seed: 2122, devices: 50,
    thresholds: { min_evictions: 1e9 },
    failing: ["evictions"],
  },
});
