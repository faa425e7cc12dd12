import { SingleBar, Presets } from "cli-progress";
import type { ProgressFn } from "../oci/index.js";

export interface Progress {
  update: ProgressFn;
  stop(): void;
}

const silent: Progress = { update: () => undefined, stop: () => undefined };

/**
 * A byte progress bar on stderr, only when stderr is a terminal and output is
 * not JSON: scripts and CI logs stay clean.
 */
export function progressBar(label: string, json: boolean | undefined): Progress {
  if (json || !process.stderr.isTTY) return silent;
  const bar = new SingleBar(
    { format: `${label} [{bar}] {percentage}% | {value}/{total} bytes`, stream: process.stderr, hideCursor: true, clearOnComplete: true },
    Presets.shades_classic,
  );
  let started = false;
  return {
    update(done, total) {
      if (!started) {
        bar.start(total, 0);
        started = true;
      }
      bar.setTotal(Math.max(total, done));
      bar.update(done);
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
