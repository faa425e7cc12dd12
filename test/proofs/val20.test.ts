/**
 * VAL20 (RL-THRU-01) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant). The assertions are
 * test/helpers/relay-proof-suite.ts's, shared by every relay suite.
 */
import { describeRelayProof } from "../helpers/relay-proof-suite.js";

describeRelayProof({
  suite: "val20",
  claim: "RL-THRU-01",
  title: "val20 (RL-THRU-01) relay throughput",
  pass: {
    name: "five tiers capped at 12 segments drained with zero loss and monotonic accounting; the 1 Mbps tier shows backpressure",
    seed: 2020, devices: 12,
    checks: ["t1_delivered", "t1_segs_per_s", "t1_queue_monotonic", "t2_delivered", "t2_segs_per_s", "t2_queue_monotonic", "t3_delivered", "t3_segs_per_s", "t3_queue_monotonic", "t4_delivered", "t4_segs_per_s", "t4_queue_monotonic", "t5_delivered", "t5_segs_per_s", "t5_queue_monotonic", "backpressure_delivered", "backpressure_queue_peak", "backpressure_rate_Bps", "backpressure_queue_monotonic", "zero_loss", "no_duplicates"],
  },
  impossible: {
    name: "an impossible min_segs_per_s fails that check, and only that one",
    seed: 2021, devices: 3,
    thresholds: { min_segs_per_s: 1e9 },
    failing: ["t1_segs_per_s", "t2_segs_per_s", "t3_segs_per_s", "t4_segs_per_s", "t5_segs_per_s"],
  },
});
