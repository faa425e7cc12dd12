/**
 * VAL23 (RL-BAND-01) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant). The assertions are
 * test/helpers/relay-proof-suite.ts's, shared by every relay suite.
 */
import { describeRelayProof } from "../helpers/relay-proof-suite.js";

describeRelayProof({
  suite: "val23",
  claim: "RL-BAND-01",
  title: "val23 (RL-BAND-01) bandwidth",
  pass: {
    name: "unlimited, rate only, quota only, hot reload through edgectl and edge.toml + SIGHUP, same pid",
    seed: 2323,
    checks: ["unlimited_flag", "unlimited_delivered", "unlimited_no_throttle", "rate_delivered", "rate_throttle_count", "rate_quota_drops", "rate_measured_Bps", "quota_drop_count", "quota_bytes_sent", "quota_reconciles", "quota_no_throttle", "hot_reload_edgectl", "hot_reload_sighup", "hot_reload_sighup_throttles"],
  },
  impossible: {
    name: "an impossible rate_throttle_count fails that check, and only that one",
    seed: 2324,
    thresholds: { rate_throttle_count: 1e9 },
    failing: ["rate_throttle_count"],
  },
});
