/**
 * VAL19 (RL-IMPW-01/02/03) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant). The assertions are
 * test/helpers/relay-proof-suite.ts's, shared by every relay suite.
 */
import { describeRelayProof } from "../helpers/relay-proof-suite.js";

describeRelayProof({
  suite: "val19",
  claim: "RL-IMPW-01/02/03",
  title: "val19 (RL-IMPW-01/02/03) relay impairment",
  pass: {
    name: "outage → every segment dead-lettered → retried and delivered; 1/10 Mbps and 200/500 ms dial delay delivered; a cut connection retried, delivered once",
    seed: 1919, devices: 6,
    checks: ["outage_deadlettered", "outage_nothing_acked", "deadletter_retry_delivered", "bandwidth_1mbps_delivered", "bandwidth_10mbps_delivered", "latency_200ms_delivered", "latency_200ms_impaired_ms", "latency_200ms_delivery_ms", "latency_200ms_deadletters", "latency_500ms_delivered", "latency_500ms_impaired_ms", "latency_500ms_delivery_ms", "latency_500ms_deadletters", "cut_connection_cut", "cut_retried_delivered", "cut_inbox_once", "inbox_missing", "inbox_duplicates"],
  },
  impossible: {
    name: "an impossible latency_200ms_delivery_ms fails that check, and only that one",
    seed: 1920, devices: 3,
    thresholds: { latency_200ms_delivery_ms: 0 },
    failing: ["latency_200ms_delivery_ms"],
  },
});
