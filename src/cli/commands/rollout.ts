import type { Command } from "commander";
import { RECOVER_STRATEGIES, TERMINAL_PLAN_PHASES } from "../../cpapi/index.js";
import type { CpClient, RecoverStrategy, Rollout } from "../../cpapi/index.js";
import { UsageError, terminalSafe } from "../../lib/index.js";
import { parseDuration } from "../../sign/index.js";
import { emit } from "../output.js";
import { action, outcome } from "../run.js";
import type { CommandOutcome } from "../run.js";
import { operatorClient, withServerFlags } from "../common.js";
import type { ServerFlags } from "../common.js";
import { planRequestOf } from "./rollout-plan.js";
import type { PlanFlags } from "./rollout-plan.js";
import { renderRollout, statusLine } from "./rollout-view.js";

type ClientFlags = ServerFlags;

const clientOf = (flags: ClientFlags): CpClient => operatorClient(flags, "rollout:manage to change plans, rollout:read to look");
const withClient = (cmd: Command): Command => withServerFlags(cmd);

const collect = (v: string, prev: string[]): string[] => [...prev, v];
const terminal = (p: Rollout): boolean => (TERMINAL_PLAN_PHASES as readonly string[]).includes(p.phase);
const show = (p: Rollout, flags: ClientFlags): void => emit({ ok: true, rollout: p }, flags, (r) => renderRollout(r.rollout));

interface StatusFlags extends ClientFlags {
  watch?: boolean;
  interval: string;
}

/** `rollout status --watch`: a redrawn view on a TTY, one line per change otherwise, one JSON line per change with --json; ends when the plan is terminal, exit 0 if it completed and 1 if it was cancelled or rolled back. */
async function watch(client: CpClient, id: string, flags: StatusFlags): Promise<CommandOutcome> {
  const every = parseDuration(flags.interval);
  if (every < 100) throw new UsageError(`--interval ${flags.interval}: at least 100ms`, "e.g. --interval 2s");
  const tty = process.stdout.isTTY && flags.json !== true;
  let last = "";
  for (;;) {
    const p = await client.getRollout(id);
    const line = flags.json === true ? JSON.stringify(p) : tty ? renderRollout(p) : statusLine(p);
    if (line !== last) {
      if (tty) process.stdout.write(`\x1b[H\x1b[2J${line.split("\n").map(terminalSafe).join("\n")}\n`);
      else process.stdout.write(`${flags.json === true ? line : terminalSafe(line)}\n`);
      last = line;
    }
    // A pipeline waiting on a rollout learns how it ended from the exit code: 0 only when it completed.
    if (terminal(p)) return outcome(p.phase === "completed");
    await new Promise((r) => setTimeout(r, every));
  }
}

export function registerRollout(program: Command): void {
  const rollout = program.command("rollout").description("fleet rollouts on a control plane: plans that move nodes to a release in batches, gated on install results and on agent behaviour");
  withClient(
    rollout
      .command("create")
      .description("create a rollout plan (membership frozen now from the enrolled nodes); the server's scheduler starts it at once")
      .requiredOption("--release <id>", "the release to roll out")
      .requiredOption("--previous <id|none>", "where a rollback sends nodes: the previous content re-signed ABOVE --release's sequence (`autonomy release rollback`, published with `release publish --standby`), since nodes refuse lower sequences; none: a spent budget fails the plan instead")
      .option("--selector <key=value>", "target nodes with this label; repeat for AND", collect, [])
      .option("--nodes <a,b,…>", "target exactly these node ids")
      .option("--max-concurrency <n>", "most nodes updating at once", "10")
      .option("--batches <list>", "cumulative batches: percentages or counts, the last 100%", "10%,50%,100%")
      .option("--failure-budget <n|p%>", "failed or stuck nodes allowed before the automatic rollback", "0")
      .option("--stuck-timeout <duration>", "a started node without a report for this long is stuck", "10m")
      .option("--soak <duration>", "after each batch but the last: wait this long before the next")
      .option("--approval", "after each batch but the last: wait for `rollout approve`")
      .option("--behaviour <rule>", "after each batch but the last: METRIC<=Nx (cohort/rest ratio) or METRIC<=+D (delta); METRIC deny_rate, tool_error_rate or activation_success; repeatable", collect, [])
      .option("--min-samples <n>", "behaviour gates: samples each side needs before judging", "20")
      .option("--window <duration>", "behaviour gates: only telemetry this recent counts", "1h")
      .option("--late-joiners <policy>", "nodes matching the selector after creation: ignore or include_next_batch", "ignore")
      .option("--notes <text>", "free text kept with the plan")
      .addHelpText("after", "\nExample:\n  autonomy rollout create --release rel-… --previous rel-… --selector site=berlin \\\n    --max-concurrency 5 --batches 10%,50%,100% --failure-budget 2 --stuck-timeout 10m --soak 5m --behaviour deny_rate<=2x"),
  ).action(
    action(async (flags: PlanFlags & ClientFlags) => {
      show(await clientOf(flags).createRollout(planRequestOf(flags)), flags);
    }),
  );
  withClient(
    rollout
      .command("status <plan-id>")
      .description("show a plan: per-batch progress, node counts by state, gates; --watch follows it until it ends (live view on a terminal, a line per change otherwise)")
      .option("--watch", "keep following until the plan is completed, cancelled or rolled back; exit 0 only when it completed, 1 when it was cancelled or rolled back")
      .option("--interval <duration>", "how often --watch asks", "2s"),
  ).action(
    action(async (id: string, flags: StatusFlags) => {
      const client = clientOf(flags);
      if (flags.watch === true) return watch(client, id, flags);
      show(await client.getRollout(id), flags);
    }),
  );
  withClient(rollout.command("list").description("list plans, newest first").option("--limit <n>", "at most this many", "50")).action(
    action(async (flags: ClientFlags & { limit: string }) => {
      const page = await clientOf(flags).listRollouts({ limit: Number(flags.limit) });
      emit({ ok: true, ...page }, flags, (r) => (r.rollouts.length === 0 ? "no plans" : r.rollouts.map((p) => `${p.plan_id}  ${p.phase.padEnd(12)} ${p.release_id}  ${p.counters.succeeded}/${p.counters.members} succeeded  ${p.created_at}`).join("\n")));
    }),
  );
  const command = (name: string, description: string, call: (c: CpClient, id: string, reason: string) => Promise<Rollout>): void => {
    withClient(rollout.command(`${name} <plan-id>`).description(description).option("--reason <text>", "why (kept in the plan's reason)", "")).action(
      action(async (id: string, flags: ClientFlags & { reason: string }) => show(await call(clientOf(flags), id, flags.reason), flags)),
    );
  };
  command("pause", "stop starting nodes (started ones go on); resume continues", (c, id, r) => c.pauseRollout(id, r));
  command("resume", "continue a paused plan", (c, id, r) => c.resumeRollout(id, r));
  command("abort", "cancel the plan (terminal): nodes not started are skipped, started ones keep what they have", (c, id, r) => c.cancelRollout(id, r));
  command("rollback", "send every node the plan started to the plan's rollback target (the previous content at a higher sequence)", (c, id, r) => c.rollbackRollout(id, r));
  withClient(
    rollout
      .command("recover <plan-id>")
      .description("recover a failed or stuck plan: retry failed/stuck nodes, roll back, or skip them and go on")
      .requiredOption("--strategy <s>", RECOVER_STRATEGIES.join(" | "))
      .option("--reason <text>", "why", ""),
  ).action(
    action(async (id: string, flags: ClientFlags & { strategy: string; reason: string }) => {
      if (!(RECOVER_STRATEGIES as readonly string[]).includes(flags.strategy)) throw new UsageError(`--strategy ${flags.strategy}: expected one of ${RECOVER_STRATEGIES.join(", ")}`, "e.g. --strategy retry");
      show(await clientOf(flags).recoverRollout(id, { strategy: flags.strategy as RecoverStrategy, reason: flags.reason }), flags);
    }),
  );
  withClient(rollout.command("approve <plan-id>").description("approve a stage's manual gate (the plan moves on at once when its other gates passed)").requiredOption("--stage <stage-id>", "the stage (batch-1, batch-2, … for plans made by `rollout create`)").option("--reason <text>", "why", "")).action(
    action(async (id: string, flags: ClientFlags & { stage: string; reason: string }) => {
      const r = await clientOf(flags).approveStage(id, flags.stage, flags.reason);
      emit({ ok: true, ...r }, flags, (x) => x.message);
    }),
  );
}
