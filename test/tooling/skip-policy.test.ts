// The skip policy, end to end: a real Vitest run (a child process) over the fixtures in
// test/fixtures/skip-policy, with the summary reporter of vitest.config.ts. A test may skip only
// when AUTONOMY_TEST_SKIP names what it needs; the summary lists what was skipped and why; any
// other skip fails the run; a missing peer fails its test with the install command.
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { describeRun, runProcess } from "../helpers/cli.js";
import type { RunResult } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";

const VITEST = fileURLToPath(new URL("../../node_modules/vitest/vitest.mjs", import.meta.url));
const CONFIG = fileURLToPath(new URL("../fixtures/skip-policy/vitest.config.ts", import.meta.url));

/** `vitest run` over one fixture file; NO_COLOR so the summary can be matched as text. */
function vitest(file: string, env: Record<string, string | undefined> = {}): Promise<RunResult> {
  return runProcess(process.execPath, [VITEST, "run", "--config", CONFIG, file], {
    env: { AUTONOMY_TEST_SKIP: undefined, NO_COLOR: "1", FORCE_COLOR: undefined, ...env },
    timeoutMs: 60_000,
  });
}

describe("the run's skip summary", () => {
  it("fails a run that skipped a test without AUTONOMY_TEST_SKIP (it.skip, it.todo), naming each", async () => {
    const r = await vitest("plain-skip.case.ts");
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stdout).toContain("1 of 3 test(s) ran, 2 skipped without AUTONOMY_TEST_SKIP");
    expect(r.stdout).toContain("SKIPPED WITHOUT AUTONOMY_TEST_SKIP (fails the run; use needs() from test/helpers/needs.ts): 2 test(s)");
    expect(r.stdout).toMatch(/it\.skip \/ skipIf \/ ctx\.skip:\n {4}- plain-skip\.case\.ts > was skipped by hand/);
    expect(r.stdout).toMatch(/it\.todo:\n {4}- plain-skip\.case\.ts > is only a todo/);
  }, 60_000);

  needs("b3sum").it("says nothing was skipped when every test ran", async () => {
    const r = await vitest("needs-b3sum.case.ts");
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toContain("AUTONOMY_TEST_SKIP= — 2 of 2 test(s) ran, nothing skipped");
  }, 60_000);

  it("passes a run whose skip AUTONOMY_TEST_SKIP named, and lists the test with the capability", async () => {
    const r = await vitest("needs-b3sum.case.ts", { AUTONOMY_TEST_SKIP: "b3sum" });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout).toContain("AUTONOMY_TEST_SKIP=b3sum — 1 of 2 test(s) ran, 1 skipped by AUTONOMY_TEST_SKIP");
    expect(r.stdout).toMatch(/SKIPPED \(by AUTONOMY_TEST_SKIP=b3sum\): 1 test\(s\)\n {2}needs b3sum:\n {4}- needs-b3sum\.case\.ts > hashes the empty input with b3sum/);
    expect(r.stdout).not.toContain("SKIPPED WITHOUT");
  }, 60_000);

  it("fails a run whose skip only claims a capability (meta.autonomySkip) that AUTONOMY_TEST_SKIP does not name", async () => {
    for (const value of [undefined, "openssl"]) {
      const r = await vitest("forged-meta.case.ts", { AUTONOMY_TEST_SKIP: value });
      expect(r.code, describeRun(r)).toBe(1);
      expect(r.stdout).toContain("1 of 2 test(s) ran, 1 skipped without AUTONOMY_TEST_SKIP");
      expect(r.stdout).toMatch(/meta\.autonomySkip claims b3sum, which AUTONOMY_TEST_SKIP does not name:\n {4}- forged-meta\.case\.ts > claims b3sum was named/);
    }
    const named = await vitest("forged-meta.case.ts", { AUTONOMY_TEST_SKIP: "b3sum" });
    expect(named.code, describeRun(named)).toBe(0);
    expect(named.stdout).toContain("1 of 2 test(s) ran, 1 skipped by AUTONOMY_TEST_SKIP");
  }, 120_000);

  it("fails the test of a missing peer when nothing names it, with the peer, its install command and the variable", async () => {
    // A PATH without b3sum (the sbin directories findCommand adds never hold it).
    const r = await vitest("needs-b3sum.case.ts", { PATH: "/nonexistent" });
    expect(r.code, describeRun(r)).toBe(1);
    const out = r.stdout + r.stderr;
    expect(out).toContain("PEER_MISSING: this test needs b3sum:");
    expect(out).toContain("b3sum: b3sum not found on the PATH (needed by test/lock/lock-b3sum and interop-skopeo (reference BLAKE3))");
    expect(out).toMatch(/install it: (sudo )?apt-get update && \S*.*apt-get install -y --no-install-recommends b3sum/);
    expect(out).toContain("or skip what needs it with AUTONOMY_TEST_SKIP=b3sum");
    expect(out).toContain("2 of 2 test(s) ran, nothing skipped"); // one failed: not skipped
  }, 60_000);
});
