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
import { SKIP_VAR, parseSkip } from "./peers.js";
import type { Capability } from "./peers.js";

type Kind = "by-variable" | "setup-failed" | "unexplained";

interface Skipped {
  kind: Kind;
  label: string;
  why: string;
}

/** The enclosing suite (or file) whose own hook threw, not one that merely has a failed test; undefined when none. */
function failedSetup(t: TestCase): string | undefined {
  for (let p: TestCase["parent"] | undefined = t.parent; p; p = p.type === "suite" ? p.parent : undefined) {
    if (p.errors().length > 0) return p.type === "suite" ? `${t.module.relativeModuleId} > ${p.fullName}` : t.module.relativeModuleId;
  }
  return undefined;
}

/** The capabilities AUTONOMY_TEST_SKIP names in this (the reporter's) process; none if it is malformed. */
function namedBySkipVar(): ReadonlySet<Capability> {
  try {
    return new Set(parseSkip(process.env[SKIP_VAR]));
  } catch {
    return new Set(); // needs() already failed the tests with the variable's error
  }
}

function classify(t: TestCase, named: ReadonlySet<Capability>): Skipped {
  const label = `${t.module.relativeModuleId} > ${t.fullName}`;
  const by = t.meta().autonomySkip;
  // The meta is only a claim (any test can set it): the skip counts as asked for only if
  // the variable really names every capability it gives as the reason.
  if (by && by.caps.length > 0 && by.caps.every((c) => named.has(c))) return { kind: "by-variable", label, why: `needs ${by.caps.join(", ")}` };
  if (by) return { kind: "unexplained", label, why: `meta.autonomySkip claims ${by.caps.join(", ")}, which ${SKIP_VAR} does not name` };
  const setup = t.options.mode === "todo" ? undefined : failedSetup(t);
  if (setup !== undefined) return { kind: "setup-failed", label, why: setup };
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
    const named = namedBySkipVar();
    const skipped = all.filter((t) => t.result().state === "skipped").map((t) => classify(t, named));
    const print = (title: string, list: Skipped[], names = true): void => {
      if (list.length === 0) return;
      console.log(`\n${title}: ${list.length} test(s)`);
      const groups = new Map<string, Skipped[]>();
      for (const s of list) groups.set(s.why, [...(groups.get(s.why) ?? []), s]);
      for (const [why, tests] of groups) console.log(names ? `  ${why}:\n${tests.map((t) => `    - ${t.label}`).join("\n")}` : `  ${why}: ${tests.length} test(s)`);
    };
    const value = process.env[SKIP_VAR];
    const of = (k: Kind): Skipped[] => skipped.filter((s) => s.kind === k);
    const [byVariable, setupFailed, unexplained] = [of("by-variable"), of("setup-failed"), of("unexplained")];
    const counts = [
      byVariable.length > 0 ? `${byVariable.length} skipped by ${SKIP_VAR}` : "",
      setupFailed.length > 0 ? `${setupFailed.length} not run (setup failed)` : "",
      unexplained.length > 0 ? `${unexplained.length} skipped without ${SKIP_VAR}` : "",
    ].filter((c) => c !== "");
    console.log(`\n${SKIP_VAR}=${value ?? ""} — ${all.length - skipped.length} of ${all.length} test(s) ran, ${counts.length === 0 ? "nothing skipped" : counts.join(", ")}`);
    print(`SKIPPED (by ${SKIP_VAR}=${value ?? ""})`, byVariable);
    print("NOT RUN (the setup of their suite failed; its error is above)", setupFailed, false);
    if (this.#filtered) {
      if (unexplained.length > 0) console.log(`${unexplained.length} other test(s) not run: left out by the test name filter (-t)`);
      return;
    }
    print(`SKIPPED WITHOUT ${SKIP_VAR} (fails the run; use needs() from test/helpers/needs.ts)`, unexplained);
    if (unexplained.length > 0) process.exitCode = 1;
  }
}
