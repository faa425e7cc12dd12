import type { Command } from "commander";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runTutorial01, runTutorial02, runTutorial03, runTutorial04 } from "../../quickstart/index.js";
import type { QuickstartResult, Tutorial02Result, Tutorial04Result } from "../../quickstart/index.js";
import { UsageError } from "../../lib/index.js";
import { action, outcome } from "../run.js";
import type { CommandOutcome } from "../run.js";
import { emit } from "../output.js";
import { repositoryOptions } from "../common.js";
import type { RegistryFlags } from "../common.js";

/** examples/ ships in the package next to dist/ and src/. */
const EXAMPLES = fileURLToPath(new URL("../../../examples", import.meta.url));

type Flags = RegistryFlags & { dir: string; registry?: string; tutorial?: string };
type Log = ((line: string) => void) | undefined;

export function registerQuickstart(program: Command): void {
  program.command("quickstart")
    .description("play tutorials end to end on embedded defaults (without --tutorial: 01, 02, then 04). 01: keys, image, policy bundle, lock, attach, sign, verify, tamper drills, activate, enforce over HTTP and MCP. 02: an embedded control plane and three local nodes (real child processes) converge on a signed release with verifiable lifecycle events; a second release whose agents misbehave is stopped by a behaviour gate and rolled back. 03: SIGKILL the runtime mid-load, restart, drain the WAL after a collector outage, highest priority first, no event lost. 04: edge-a relays its activated release with edged over mutual TLS to edge-b and edge-c (no control plane), both activate it; an OS replacement on edge-b, edged precheck reconstructs, same activation, boot epoch advanced")
    .option("--tutorial <n>", "play only this tutorial: 01, 02, 03 or 04 (default: 01, 02, then 04)")
    .option("--dir <dir>", "work folder (cleared first); playing them all, tutorials 02 and 04 work in DIR/tutorial-02 and DIR/tutorial-04", ".autonomy-quickstart")
    .option("--registry <host:port>", "tutorial 01: use this OCI registry instead of a local image layout (tutorial 02 always uses a layout)")
    .option("--plain-http", "talk HTTP to --registry (loopback test registries)")
    .option("--json", "machine-readable output (all: {ok, tutorials: [01's, 02's and 04's documents]})")
    .addHelpText("after", "\nTutorial 02 starts `autonomy serve` and three `autonomy runtime start --server` child processes on loopback; tutorial 04 starts `edged run` for three edge nodes; Ctrl-C stops them all.")
    .action(action(async (flags: Flags) => {
      const log: Log = flags.json ? undefined : (line: string): void => void process.stdout.write(`${line}\n`);
      const which = normalise(flags.tutorial);
      if (which === "03") return tutorial03(flags, log);
      if (which === "04") {
        const r4 = await tutorial04(flags.dir, log);
        emit(r4, flags, render04);
        return outcome(r4.ok);
      }
      if (which === "01") {
        const r1 = await tutorial01(flags, log, flags.dir);
        emit(r1, flags, render01);
        return outcome(r1.ok);
      }
      if (which === "02") {
        const r2 = await tutorial02(flags.dir, log);
        emit(r2, flags, render02);
        return outcome(r2.ok);
      }
      return both(flags, log);
    }));
}

function normalise(t: string | undefined): "01" | "02" | "03" | "04" | "all" {
  if (t === undefined) return "all";
  const n = /^0?([1234])$/.exec(t)?.[1];
  if (n === undefined) throw new UsageError(`no tutorial ${t}`, "choose --tutorial 01, 02, 03 or 04 (or none: 01, 02, then 04)");
  return `0${n}` as "01" | "02" | "03" | "04";
}

/** 01, then 02 only if 01 passed (02 builds on what 01 teaches), then 04 only if 02 passed; one document with --json. */
async function both(flags: Flags, log: Log): Promise<CommandOutcome> {
  log?.("Tutorial 01 — receive, verify, activate, enforce\n");
  const r1 = await tutorial01(flags, log, flags.dir);
  if (!flags.json) process.stdout.write(`${render01(r1)}\n\n`);
  if (!r1.ok) {
    if (flags.json) emit({ ok: false, tutorials: [{ tutorial: "01", ...r1 }] }, flags, () => "");
    return outcome(false);
  }
  log?.("Tutorial 02 — seed once, update everywhere: a control plane, three nodes, a rollout stopped by its behaviour gate\n");
  const r2 = await tutorial02(join(flags.dir, "tutorial-02"), log);
  if (!flags.json) process.stdout.write(`${render02(r2)}\n\n`);
  const done = [{ tutorial: "01", ...r1 }, { tutorial: "02", ...r2 }];
  if (!r2.ok) {
    if (flags.json) emit({ ok: false, tutorials: done }, flags, () => "");
    return outcome(false);
  }
  log?.("Tutorial 04 — relay the activated release to peers without a control plane, survive an OS replacement\n");
  const r4 = await tutorial04(join(flags.dir, "tutorial-04"), log);
  const doc = { ok: r4.ok, tutorials: [...done, { tutorial: "04", ...r4 }] };
  emit(doc, flags, () => render04(r4));
  return outcome(doc.ok);
}

function tutorial01(flags: Flags, log: Log, dir: string): Promise<QuickstartResult> {
  return runTutorial01({
    dir, examplesDir: EXAMPLES, registryOptions: repositoryOptions(flags),
    ...(flags.registry !== undefined ? { registry: flags.registry } : {}),
    ...(log ? { log } : {}),
  });
}

function tutorial02(dir: string, log: Log): Promise<Tutorial02Result> {
  return abortable((signal) => runTutorial02({ dir, examplesDir: EXAMPLES, signal, ...(log ? { log } : {}) }));
}

function tutorial04(dir: string, log: Log): Promise<Tutorial04Result> {
  return abortable((signal) => runTutorial04({ dir, examplesDir: EXAMPLES, signal, ...(log ? { log } : {}) }));
}

/** Ctrl-C (SIGINT) or SIGTERM aborts the tutorial, which then stops its child processes before the command ends. */
async function abortable<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await run(stop.signal);
  } finally {
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
  }
}

async function tutorial03(flags: Flags, log: Log): Promise<CommandOutcome> {
  const r3 = await runTutorial03({ dir: flags.dir, examplesDir: EXAMPLES, ...(log ? { log } : {}) });
  emit(r3, flags, (r) => r.ok
    ? `\nTutorial 03 complete: killed mid-load, recovered, ${r.delivered} events delivered after the outage (${r.answered} answered calls, every decision among them), highest priority first.`
    : "\nTutorial 03 FAILED: a step above did not behave as it must.");
  return outcome(r3.ok);
}

function render01(r: QuickstartResult): string {
  return r.ok
    ? `\nQuickstart complete: ${r.ref} (${r.digest}) verified, activated and enforced; every drill was refused.`
    : "\nQuickstart FAILED: a step above did not behave as it must.";
}

function render02(r: Tutorial02Result): string {
  const plan = r.rollout;
  return r.ok && plan
    ? `\nTutorial 02 complete in ${(r.duration_ms / 1000).toFixed(1)} s: ${r.nodes.length} nodes converged on ${r.releases[0]?.release_id ?? "?"}; plan ${plan.plan_id} was stopped by its behaviour gate and rolled back (${plan.canary} is back on release 1's content, the other nodes never ran release 2).`
    : "\nTutorial 02 FAILED: a step above did not behave as it must.";
}

function render04(r: Tutorial04Result): string {
  const [a, b, c] = r.nodes;
  return r.ok && a && b && c
    ? `\nTutorial 04 complete in ${(r.duration_ms / 1000).toFixed(1)} s: ${a.id} relayed its release (sequence ${a.sequence ?? "?"}) to ${b.id} and ${c.id}, which activated it with no control plane; after an OS replacement ${b.id} came back on the same activation at boot epoch ${b.boot_epoch ?? "?"}.`
    : "\nTutorial 04 FAILED: a step above did not behave as it must.";
}
