import { AutonomyError } from "../../src/lib/index.js";

/** Runs `fn` and returns what it threw; fails the test when it does not throw. */
export function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

/** Awaits `p` and says how it ended: `CODE/exit` for a typed error, `NO_ERROR` when it resolved; anything else is rethrown. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AutonomyError) return `${e.code}/${e.exitCode}`;
    throw e;
  }
  return "NO_ERROR";
}
