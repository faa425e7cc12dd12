/**
 * Ends every run with what was skipped and why, and fails a run that skipped a
 * test nobody asked to skip. A skip is allowed only when AUTONOMY_TEST_SKIP
 * named the capability (see ./needs.ts, which marks such tests with
 * `meta.autonomySkip`). `it.skip`, `skipIf`, `ctx.skip()` and `it.todo` fail
 * the run, so a skipped test can never again pass unnoticed.
 *
 * Tests that did not run because their suite's setup failed are listed too;
 * the failed hook already fails the run. A name filter (`-t`) skips on purpose,
 * so such runs only list.
 */
import type { Reporter, TestCase, TestModule, TestRunEndReason, Vitest } from "vitest/node";
import { SKIP_VAR } from "./peers.js";

type Kind = "by-variable" | "setup-failed" | "unexplained";

interface Skipped {
  kind: Kind;
  label: string;
  why: string;
}

/** Whether a hook of an enclosing suite or of the file threw (its own errors, not a failed child test). */
function setupFailed(t: TestCase): boolean {
  for (let p: TestCase["parent"] | undefined = t.parent; p; p = p.type === "suite" ? p.parent : undefined) {
    if (p.errors().length > 0) return true;
  }
  return false;
}

function classify(t: TestCase): Skipped {
  const label = `${t.module.relativeModuleId} > ${t.fullName}`;
  const by = t.meta().autonomySkip;
  if (by) return { kind: "by-variable", label, why: `needs ${by.caps.join(", ")}` };
  if (t.options.mode !== "todo" && setupFailed(t)) return { kind: "setup-failed", label, why: "its suite's setup failed (error above)" };
  const r = t.result();
  const how = t.options.mode === "todo" ? "it.todo" : r.state === "skipped" && r.note ? `ctx.skip("${r.note}")` : "it.skip / skipIf / ctx.skip";
  return { kind: "unexplained", label, why: how };
}

export class SkipReporter implements Reporter {
  #filtered = false;

  onInit(vitest: Vitest): void {
    this.#filtered = vitest.config.testNamePattern !== undefined;
  }

  onTestRunEnd(modules: ReadonlyArray<TestModule>, _errors: unknown, reason: TestRunEndReason): void {
    if (reason === "interrupted") return;
    const all = modules.flatMap((m) => [...m.children.allTests()]);
    const skipped = all.filter((t) => t.result().state === "skipped").map(classify);
    const print = (title: string, list: Skipped[]): void => {
      if (list.length === 0) return;
      console.log(`\n${title}: ${list.length} test(s)`);
      const groups = new Map<string, Skipped[]>();
      for (const s of list) groups.set(s.why, [...(groups.get(s.why) ?? []), s]);
      for (const [why, tests] of groups) console.log(`  ${why}:\n${tests.map((t) => `    - ${t.label}`).join("\n")}`);
    };
    const value = process.env[SKIP_VAR];
    console.log(`\n${SKIP_VAR}=${value ?? ""} — ${all.length - skipped.length} of ${all.length} test(s) ran, ${skipped.length === 0 ? "nothing skipped" : `${skipped.length} skipped`}`);
    print(`SKIPPED (by ${SKIP_VAR}=${value ?? ""})`, skipped.filter((s) => s.kind === "by-variable"));
    print("NOT RUN (a suite's setup failed)", skipped.filter((s) => s.kind === "setup-failed"));
    const unexplained = skipped.filter((s) => s.kind === "unexplained");
    if (this.#filtered) {
      if (unexplained.length > 0) console.log(`${unexplained.length} other test(s) not run: left out by the test name filter (-t)`);
      return;
    }
    print(`SKIPPED WITHOUT ${SKIP_VAR} (fails the run; use needs() from test/helpers/needs.ts)`, unexplained);
    if (unexplained.length > 0) process.exitCode = 1;
  }
}
