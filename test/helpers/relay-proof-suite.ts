/**
 * The shape every relay proof test (val19–val23, relay-mult) shares: one run at
 * a reduced size that must pass with exactly the suite's checks, a netem probe
 * note and the report written as returned; and one run with an impossible
 * threshold that must fail exactly the checks it names (a check measures, it
 * is not a constant). Real `edged run` children (`npm run build` first).
 */
import { describe, expect, it } from "vitest";
import type { SuiteId } from "../../src/proofs/suite.js";
import { failures, runSuite } from "./proof-run.js";

export interface RelayProofSpec {
  suite: SuiteId;
  claim: string;
  /** The describe title. */
  title: string;
  /** The passing run: its test name, seed, size (none: the suite's own) and the check names in order. */
  pass: { name: string; seed: number; devices?: number; checks: readonly string[] };
  /** The failing run: its test name, seed, size, the impossible thresholds and the checks that must fail (and only those). */
  impossible: { name: string; seed: number; devices?: number; thresholds: Record<string, number>; failing: readonly string[] };
}

const TIMEOUT_MS = 180_000;

export function describeRelayProof(s: RelayProofSpec): void {
  const sized = (devices: number | undefined) => (devices === undefined ? {} : { devices });
  describe(s.title, () => {
    it(s.pass.name, async () => {
      const { report, written } = await runSuite(s.suite, { db: "sqlite", seed: s.pass.seed, ...sized(s.pass.devices) });
      expect(failures(report)).toEqual([]);
      expect(report).toMatchObject({ suite: s.suite, claim: s.claim, pass: true, backend: "none", seed: s.pass.seed, params: { ...sized(s.pass.devices), thresholds: {} } });
      expect(report.checks.map((c) => c.name)).toEqual(s.pass.checks);
      expect(report.notes?.["netem_probe"]).toMatch(/^(available|unavailable)/);
      expect(written).toEqual(report);
    }, TIMEOUT_MS);

    it(s.impossible.name, async () => {
      const { report } = await runSuite(s.suite, { db: "sqlite", seed: s.impossible.seed, ...sized(s.impossible.devices), thresholds: s.impossible.thresholds });
      expect(report.pass).toBe(false);
      expect(report.checks.filter((c) => !c.pass).map((c) => c.name)).toEqual(s.impossible.failing);
    }, TIMEOUT_MS);
  });
}
