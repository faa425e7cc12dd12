/**
 * VAL22 (RL-DEAD-01) for real at a reduced size: real `edged run` children (the
 * built bin/edged.js — `npm run build` first) over mTLS on loopback, driven
 * through their control sockets; and an impossible threshold shown to fail
 * its check (the check measures, it is not a constant). The assertions are
 * test/helpers/relay-proof-suite.ts's, shared by every relay suite.
 */
import { describeRelayProof } from "../helpers/relay-proof-suite.js";

describeRelayProof({
  suite: "val22",
  claim: "RL-DEAD-01",
  title: "val22 (RL-DEAD-01) dead letters",
  pass: {
    name: "Group R recovered (1.000), Group U dead again, dead letters survive SIGTERM + restart, purge dry run and --force, retention sweep",
    seed: 2222, devices: 6,
    checks: ["deadlettered", "sigterm_exit_code", "ledger_survives_restart", "group_r_recovery_rate", "group_u_redeadlettered", "purge_dry_run", "purge_force", "retention_swept"],
  },
  impossible: {
    name: "an impossible group_r_recovery_rate fails that check, and only that one",
    seed: 2223, devices: 3,
    thresholds: { group_r_recovery_rate: 1.5 },
    failing: ["group_r_recovery_rate"],
  },
});
