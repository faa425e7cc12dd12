/**
 * The proofs contract: a suite is a function from a running control plane to
 * a list of checks, each measured and compared with its threshold. The runner
 * (runner.ts) owns everything around it: the database, the `autonomy serve`
 * child process, the seed, the report file and the exit code. Suites measure;
 * they never decide the exit code or write the report themselves.
 */
import type { ControlPlaneProcess } from "./cp-process.js";

export type { ControlPlaneProcess } from "./cp-process.js";

/** Fleet suites (VAL07–VAL11) run against a control plane; relay suites (VAL19–VAL23, relay-mult) against edged processes. */
export const SUITE_IDS = ["val07", "val08", "val09", "val10", "val11", "val19", "val20", "val21", "val22", "val23", "relay-mult"] as const;
export type SuiteId = (typeof SUITE_IDS)[number];
/** The control plane's store; `none` for relay suites, which run no control plane. */
export type Backend = "sqlite" | "postgres" | "none";

/** One measured claim: `pass` is computed by the suite from `measured` and `threshold` (a human-readable bound, e.g. "≤ 50 ms"). */
export interface Check {
  name: string;
  pass: boolean;
  threshold: string;
  measured: string | number | boolean;
  detail?: string;
}

/**
 * Knobs for tests and small machines. Whatever is set here is written into the
 * report (`params`), so a run at reduced scale is never mistaken for the full proof.
 */
export interface SuiteParams {
  /** Fleet size instead of the suite's default (1,000 for VAL07 and VAL08). */
  devices?: number;
  /** Numeric threshold overrides by name (e.g. `plan_create_p99_ms=0`); each suite documents its names. */
  thresholds: Readonly<Record<string, number>>;
}

interface BaseContext {
  backend: Backend;
  /** Printed; every random choice of a suite derives from it. */
  seed: number;
  /** Scratch folder for the suite (keys, fleets), under --out. */
  workDir: string;
  /** Progress lines (stderr; quiet with --json unless on a TTY). */
  log(line: string): void;
  /** Aborted on Ctrl-C / SIGTERM: stop soon, the runner tears everything down. */
  signal: AbortSignal;
  params: SuiteParams;
  /** Records a fact about how the suite ran (e.g. `impairment: "proxy"`) in the report's `notes`. */
  note(key: string, value: string | number | boolean): void;
}

/** What a fleet suite runs against. */
export interface SuiteContext extends BaseContext {
  /** A real `autonomy serve` child process on loopback, already up. */
  cp: ControlPlaneProcess;
}

/** What a relay suite runs with: no control plane; it starts its own edged processes in workDir. */
export type EdgeSuiteContext = BaseContext;

/** A relay suite (VAL19–VAL23, relay-mult): starts and stops its own edged processes. */
export interface EdgeSuite {
  kind: "edge";
  id: SuiteId;
  claim: string;
  title: string;
  run(ctx: EdgeSuiteContext): Promise<Check[]>;
}

export type Suite = FleetSuite | EdgeSuite;

/** A fleet suite (VAL07–VAL11): the runner gives it a running control plane. */
export interface FleetSuite {
  kind?: "fleet";
  id: SuiteId;
  /** The seed-000 claim it proves, e.g. "FR-PERF-01". */
  claim: string;
  title: string;
  /**
   * Extra `autonomy serve` flags for this suite (e.g. `--scheduler-interval 200ms`,
   * `--release-key FILE` made in workDir); given at launch and at every restart.
   */
  serveArgs?(workDir: string): Promise<string[]> | string[];
  run(ctx: SuiteContext): Promise<Check[]>;
}

/** A threshold: the override from `--threshold name=value` when given, else the suite's default. */
export function thresholdOf(ctx: Pick<SuiteContext, "params">, name: string, fallback: number): number {
  return ctx.params.thresholds[name] ?? fallback;
}

/** `measured ≤ max` as a check (numbers rounded to 0.1 in the report). */
export function atMost(name: string, measured: number, max: number, unit: string, detail?: string): Check {
  return { name, pass: Number.isFinite(measured) && measured <= max, threshold: `≤ ${max}${unit ? ` ${unit}` : ""}`, measured: round1(measured), ...(detail !== undefined ? { detail } : {}) };
}

/** `measured ≥ min` as a check. */
export function atLeast(name: string, measured: number, min: number, unit: string, detail?: string): Check {
  return { name, pass: Number.isFinite(measured) && measured >= min, threshold: `≥ ${min}${unit ? ` ${unit}` : ""}`, measured: round1(measured), ...(detail !== undefined ? { detail } : {}) };
}

/** `measured === expected` as a check. */
export function equals(name: string, measured: string | number | boolean, expected: string | number | boolean, detail?: string): Check {
  return { name, pass: measured === expected, threshold: `= ${String(expected)}`, measured, ...(detail !== undefined ? { detail } : {}) };
}

export function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** The q-quantile (0..1) of samples by nearest rank: the value at rank ceil(q·n); NaN for none. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1] as number;
}
