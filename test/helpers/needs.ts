/**
 * The one way a test may depend on a peer or on the machine (see ./peers.ts).
 *
 *   const registry = needs("docker-registry");
 *   registry.describe("…", () => { … });   // or registry.it("…", async () => { … })
 *
 * When AUTONOMY_TEST_SKIP names one of the capabilities, the suite or test is
 * skipped and carries `meta.autonomySkip`, which the run's summary
 * (./skip-reporter.ts) lists. Otherwise it runs, and a missing capability fails
 * it first with PEER_MISSING, naming the peer and its install command. Any
 * other skip (`it.skip`, `skipIf`, `ctx.skip`, `it.todo`) fails the run.
 */
import { beforeAll, describe, it } from "vitest";
import type { TestContext } from "vitest";
import { SKIP_VAR, assertPresent, parseSkip } from "./peers.js";
import type { Capability } from "./peers.js";

/** Why a suite or test was skipped: the capabilities AUTONOMY_TEST_SKIP named, and its value. */
export interface AutonomySkip {
  caps: Capability[];
  variable: string;
}

declare module "vitest" {
  interface TaskMeta {
    autonomySkip?: AutonomySkip;
  }
}

export interface Needs {
  /** True when AUTONOMY_TEST_SKIP names one of the capabilities. */
  readonly skipped: boolean;
  /** Throws PEER_MISSING when a capability is missing: call it first in a file-level beforeAll that starts a peer. */
  check(): void;
  /** A suite that needs the capabilities: skipped (and listed) by AUTONOMY_TEST_SKIP, else checked before its own hooks. */
  describe(name: string, fn: () => void): void;
  /** A test that needs the capabilities: skipped (and listed) by AUTONOMY_TEST_SKIP, else checked before its body. */
  it(name: string, fn: (ctx: TestContext) => unknown, timeout?: number): void;
}

export function needs(...caps: Capability[]): Needs {
  const named = parseSkip().filter((c) => caps.includes(c));
  const check = (): void => assertPresent(caps);
  if (named.length > 0) {
    const options = { skip: true, meta: { autonomySkip: { caps: named, variable: `${SKIP_VAR}=${process.env[SKIP_VAR] ?? ""}` } } };
    return {
      skipped: true,
      check,
      describe: (name, fn) => describe(name, options, fn),
      it: (name, fn) => it(name, options, fn),
    };
  }
  return {
    skipped: false,
    check,
    describe: (name, fn) =>
      describe(name, () => {
        beforeAll(check); // registered first: runs before the suite's own hooks start anything
        fn();
      }),
    it: (name, fn, timeout) =>
      it(name, timeout === undefined ? {} : { timeout }, async (ctx) => {
        check();
        await fn(ctx);
      }),
  };
}
