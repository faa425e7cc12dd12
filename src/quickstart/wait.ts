/**
 * A tutorial step that did not behave: the step's name and what was seen.
 * The tutorial records it as a failed step and stops (the later steps would
 * only build on it).
 */
export class StepFailed extends Error {
  constructor(readonly step: string, message: string) {
    super(message);
    this.name = "StepFailed";
  }
}

/** The user pressed Ctrl-C (or the caller aborted): the tutorial stops and cleans up. */
export class TutorialAborted extends Error {
  constructor() {
    super("interrupted: the tutorial stopped and its child processes were stopped");
    this.name = "TutorialAborted";
  }
}

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  signal?: AbortSignal | undefined;
}

/**
 * Polls `probe` until it answers `{ done: true }` (its value is returned) or
 * `{ fail }` (a definite failure, no point waiting: StepFailed at once). After
 * `timeoutMs` it fails with what was awaited and the last thing seen, so a
 * timeout explains itself: "timed out after 30 s waiting for 3 nodes to
 * activate rel-…; last seen: node-c verify_failed (…)".
 */
export async function waitFor<T>(step: string, what: string, probe: () => Promise<Probe<T>>, o: WaitOptions): Promise<T> {
  const end = Date.now() + o.timeoutMs;
  let last = "nothing yet";
  for (;;) {
    if (o.signal?.aborted) throw new TutorialAborted();
    let p: Probe<T>;
    try {
      p = await probe();
    } catch (e) {
      p = { seen: `an error: ${e instanceof Error ? e.message : String(e)}` };
    }
    if ("done" in p) return p.done;
    if ("fail" in p) throw new StepFailed(step, p.fail);
    last = p.seen;
    if (Date.now() >= end) throw new StepFailed(step, `timed out after ${Math.round(o.timeoutMs / 1000)} s waiting for ${what}; last seen: ${last}`);
    await sleep(o.intervalMs ?? 200, o.signal);
  }
}

export type Probe<T> = { done: T } | { fail: string } | { seen: string };

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}
