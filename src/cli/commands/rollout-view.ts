import type { Rollout } from "../../cpapi/index.js";

const BAR = 24;

function bar(done: number, total: number): string {
  const n = total === 0 ? 0 : Math.round((done / total) * BAR);
  return `[${"#".repeat(n)}${".".repeat(BAR - n)}] ${done}/${total}`;
}

/** The progress view of a plan: header, per-batch bars, node counts by state, gates. Plain text (the caller redraws it on a TTY). */
export function renderRollout(p: Rollout): string {
  const c = p.counters;
  const lines = [
    `plan ${p.plan_id}  ${p.phase.toUpperCase()}  release ${p.release_id}  rollback target ${p.previous_release_id ?? "none"}`,
    `reason: ${p.reason}`,
    `budget: ${c.budget_used}/${c.budget_allowed} failures used (${c.failures_total} total)  max concurrency ${p.max_concurrency}  stuck after ${p.stuck_timeout_seconds}s`,
    "",
  ];
  let prev = 0;
  p.stages.forEach((s, i) => {
    const members = p.nodes.filter((n) => n.batch === i);
    const done = members.filter((n) => n.state === "succeeded").length;
    const mark = s.stage_id === p.current_stage_id ? ">" : " ";
    lines.push(`${mark} ${s.stage_id.padEnd(12)} ${bar(done, members.length || s.cumulative - prev)}  ${s.stage_phase}`);
    for (const g of s.gates) lines.push(`    gate ${g.kind}: ${g.status} (${g.detail})`);
    prev = s.cumulative;
  });
  lines.push("");
  lines.push(`nodes: ${c.members} members  pending ${c.pending}  in_progress ${c.in_progress}  succeeded ${c.succeeded}  failed ${c.failed}  stuck ${c.stuck}  retried ${c.retried}  rolled_back ${c.rolled_back}  skipped ${c.skipped}`);
  const trouble = p.nodes.filter((n) => n.state === "failed" || n.state === "stuck").slice(0, 10);
  for (const n of trouble) lines.push(`  ${n.state.padEnd(8)} ${n.node_id}  ${n.detail}`);
  return lines.join("\n");
}

/** What a plan waits on or why it ended, for the one-line view: the current stage's unpassed gates while in gate_wait, the reason once it stopped. */
function why(p: Rollout): string {
  if (p.phase === "gate_wait") {
    const stage = p.stages.find((s) => s.stage_id === p.current_stage_id);
    const waiting = (stage?.gates ?? []).filter((g) => g.status !== "passed").map((g) => `${g.kind}: ${g.detail}`);
    return waiting.length > 0 ? ` waiting=[${waiting.join("; ")}]` : "";
  }
  return p.phase === "active" ? "" : ` reason=${JSON.stringify(p.reason)}`;
}

/** One line per observed change when stdout is not a terminal (logs, CI). */
export function statusLine(p: Rollout): string {
  const c = p.counters;
  return `${p.plan_id} ${p.phase} stage=${p.current_stage_id ?? "-"} succeeded=${c.succeeded}/${c.members} in_progress=${c.in_progress} failed=${c.failed} stuck=${c.stuck} rolled_back=${c.rolled_back} budget=${c.budget_used}/${c.budget_allowed}${why(p)}`;
}
