import { AutonomyError } from "../lib/index.js";

/** A quickstart step as printed and returned in --json. */
export interface QuickstartStep {
  step: string;
  ok: boolean;
  detail: string;
}

export type Record_ = (step: string, detail: string, ok?: boolean) => void;

export function recorder(steps: QuickstartStep[], log?: (line: string) => void): Record_ {
  return (step, detail, ok = true) => {
    steps.push({ step, ok, detail });
    log?.(`${ok ? "✓" : "✗"} ${step}: ${detail}`);
  };
}

/** Runs `p`, which must be refused with exit code 4; anything else is a failed step. */
export async function expectRefusal(step: string, p: Promise<unknown>, record: Record_): Promise<void> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AutonomyError && e.exitCode === 4) {
      record(step, `refused as it should: ${e.code} (exit 4)`);
      return;
    }
    throw e;
  }
  record(step, "it PASSED but must have been refused", false);
}
