/**
 * relay-mult (RL-MULT-01) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant). The assertions are
 * test/helpers/relay-proof-suite.ts's, shared by every relay suite.
 */
import { describeRelayProof } from "../helpers/relay-proof-suite.js";

describeRelayProof({
  suite: "relay-mult",
  claim: "RL-MULT-01",
  title: "relay-mult (RL-MULT-01) multi-peer isolation",
  pass: {
    name: "three peers, one a black hole: the live two get every segment undelayed; only the dead one's deliveries dead-letter",
    seed: 4141, devices: 6,
    checks: ["mult-p1_delivered", "mult-p2_delivered", "dead_peer_deadlettered", "live_peers_no_deadletters", "deadletters_only_dead_peer", "mult-p1_inbox", "mult-p2_inbox", "live_delivery_slowdown"],
  },
  impossible: {
    name: "an impossible live_delivery_slowdown fails that check, and only that one",
    seed: 4142, devices: 3,
    thresholds: { live_delivery_slowdown: 0 },
    failing: ["live_delivery_slowdown"],
  },
});
