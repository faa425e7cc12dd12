/**
 * VAL22 (RL-DEAD-01): dead letters, on a real edged sending to two peers
 * through impairment proxies, both down at first:
 *
 * - Group R (peer R comes back): every segment dead-letters for R; R comes
 *   back; retry all → delivered (recovery rate = delivered / dead-lettered = 1.000);
 * - Group U (peer U stays down): retried too → dead-lettered again;
 * - the ledger survives SIGTERM and a restart of edged: the dead letters are
 *   still listed, the same ones;
 * - purge: a dry run lists U's dead letters without removing any; `--force`
 *   removes exactly those;
 * - retention: with `deadletter_retention_hours` set small (edge.toml, then a
 *   restart), new dead letters are swept once older than it.
 *
 * `--devices N` sets the segment count (default 20).
 */
import type { Check, EdgeSuite, EdgeSuiteContext } from "../suite.js";
import { atLeast, equals, thresholdOf } from "../suite.js";
import { enqueueAll, peerQueue, probeNetem, seededSegments, waitFor } from "../edge/common.js";
import { EdgeLab } from "../edge/lab.js";

const DEFAULT_SEGMENTS = 20;
const WAIT_MS = 60_000;
/** ~1.8 s: the smallest retention that still lets the suite see the dead letters first. */
const RETENTION_HOURS = 0.0005;
const SRC = "v22-src";
const R = "v22-r";
const U = "v22-u";

export const val22: EdgeSuite = {
  kind: "edge",
  id: "val22",
  claim: "RL-DEAD-01",
  title: "dead letters: Group R retried and delivered (1.000), Group U re-deadlettered, ledger survives SIGTERM, purge dry run and --force, retention",
  run,
};

async function run(ctx: EdgeSuiteContext): Promise<Check[]> {
  await probeNetem(ctx);
  const lab = await EdgeLab.open(ctx, {
    name: "lab", impair: true,
    nodes: [{ id: R, receive: true }, { id: U, receive: true }, { id: SRC, peers: [R, U], toml: { relay: { success_condition: "all_peers" } } }],
  });
  try {
    return await scenario(ctx, lab);
  } finally {
    await lab.close();
  }
}

const key = (d: { segment_id: string; peer_id: string }): string => `${d.segment_id}/${d.peer_id}`;

async function scenario(ctx: EdgeSuiteContext, lab: EdgeLab): Promise<Check[]> {
  const src = lab.node(SRC);
  const n = ctx.params.devices ?? DEFAULT_SEGMENTS;
  ctx.note("segments", n);
  const checks: Check[] = [];
  for (const p of [R, U]) {
    lab.proxy(SRC, p).set({ down: true });
    lab.proxy(SRC, p).resetAll();
  }
  await enqueueAll(src, seededSegments(ctx.seed, n, 2048, 22));
  const dl = await waitFor(ctx, WAIT_MS, () => src.ctl.status(), (s) => peerQueue(s, R).deadletter >= n && peerQueue(s, U).deadletter >= n);
  checks.push(equals("deadlettered", `R ${peerQueue(dl.value, R).deadletter}, U ${peerQueue(dl.value, U).deadletter}`, `R ${n}, U ${n}`, `both peers down; in ${Math.round(dl.ms)} ms`));
  const before = (await src.ctl.deadletters()).map(key).sort();

  // The ledger survives SIGTERM and a restart.
  const exit = await src.proc.stop("SIGTERM");
  await src.proc.start();
  const after = (await src.ctl.deadletters()).map(key).sort();
  checks.push(equals("sigterm_exit_code", exit.code ?? -1, 0, `edged exited ${exit.code ?? exit.signal ?? "?"} on SIGTERM`));
  checks.push(equals("ledger_survives_restart", after.length === before.length && after.every((k, i) => k === before[i]), true, `${before.length} dead letters before SIGTERM, ${after.length} listed after the restart, same (segment, peer) pairs`));

  // Group R: back up, retried, delivered. Group U: still down, retried, dead again.
  lab.proxy(SRC, R).set({ down: false });
  const listed = await src.ctl.deadletters();
  for (const d of listed) await src.ctl.retry(d.segment_id, d.peer_id);
  const settled = await waitFor(ctx, WAIT_MS, () => src.ctl.status(), (s) => peerQueue(s, R).acked >= n && peerQueue(s, U).deadletter >= n);
  const qr = peerQueue(settled.value, R);
  const qu = peerQueue(settled.value, U);
  const groupR = listed.filter((d) => d.peer_id === R).length;
  checks.push(atLeast("group_r_recovery_rate", groupR === 0 ? 0 : qr.acked / groupR, thresholdOf(ctx, "group_r_recovery_rate", 1), "", `${qr.acked} delivered of ${groupR} dead letters retried to the peer that came back (${Math.round(settled.ms)} ms)`));
  checks.push(equals("group_u_redeadlettered", qu.deadletter, listed.filter((d) => d.peer_id === U).length, `retried to the peer still down: ${qu.deadletter} dead-lettered again, ${qu.acked} acked`));

  // Purge: dry run lists and keeps; --force removes exactly those.
  const dry = await src.ctl.purge({ peer_id: U, force: false });
  const stillListed = (await src.ctl.deadletters()).filter((d) => d.peer_id === U).length;
  checks.push(equals("purge_dry_run", `${dry.dry_run}, matched ${dry.matched.length}, purged ${dry.purged}, still listed ${stillListed}`, `true, matched ${n}, purged 0, still listed ${n}`, "purge without --force"));
  const forced = await src.ctl.purge({ peer_id: U, force: true });
  const left = (await src.ctl.deadletters()).length;
  checks.push(equals("purge_force", `purged ${forced.purged}, left ${left}`, `purged ${n}, left 0`, "purge --force of peer U's dead letters"));

  // Retention: dead letters older than the retention are swept (edge.toml change, then a restart).
  const m = Math.max(2, Math.ceil(n / 4));
  await enqueueAll(src, seededSegments(ctx.seed, m, 2048, 2222));
  const dl2 = await waitFor(ctx, WAIT_MS, () => src.ctl.deadletters(), (l) => l.length >= m);
  await src.rewrite({ storage: { deadletter_retention_hours: RETENTION_HOURS } });
  await src.proc.stop("SIGTERM");
  await src.proc.start();
  const swept = await waitFor(ctx, WAIT_MS, () => src.ctl.deadletters(), (l) => l.length === 0, 200);
  ctx.note("retention_hours", RETENTION_HOURS);
  checks.push(equals("retention_swept", `${dl2.value.length} → ${swept.value.length}`, `${m} → 0`, `dead letters to U before and ${Math.round(swept.ms)} ms after a restart with deadletter_retention_hours = ${RETENTION_HOURS}`));
  return checks;
}
