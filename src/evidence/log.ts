import type { WalLogger } from "../telemetry/index.js";

export type Progress = (line: string) => void;

/**
 * The cell's autonomy.log: every step, check, iteration and external command
 * with a timestamp, and every record the WAL logged while the cell ran (the
 * structured WAL_RECOVERY_FAIL_HARD / warning records an operator would see on
 * stderr). Lines marked `progress` also go to the progress callback (stderr).
 */
export class CellLog {
  readonly #lines: string[] = [];
  readonly #progress: Progress;
  readonly #prefix: string;

  constructor(prefix: string, progress: Progress = () => undefined) {
    this.#prefix = prefix;
    this.#progress = progress;
  }

  line(text: string, opts: { progress?: boolean } = {}): void {
    for (const l of text.split("\n")) this.#lines.push(`${new Date().toISOString()} ${l}`);
    if (opts.progress) this.#progress(`[lab ${this.#prefix}] ${text}`);
  }

  /** Progress on stderr and in the log. */
  step(text: string): void {
    this.line(text, { progress: true });
  }

  /** A WalLogger whose records land here as JSON lines, tagged with what was running. */
  walLogger(context: () => string): WalLogger & { records: { level: string; msg: string; obj: Record<string, unknown> }[] } {
    const records: { level: string; msg: string; obj: Record<string, unknown> }[] = [];
    const put = (level: string, obj: Record<string, unknown>, msg: string): void => {
      records.push({ level, msg, obj });
      this.line(`  wal-log ${JSON.stringify({ level, msg, context: context(), ...obj })}`);
    };
    return { records, warn: (obj, msg) => put("warn", obj, msg), error: (obj, msg) => put("error", obj, msg) };
  }

  text(): string {
    return `${this.#lines.join("\n")}\n`;
  }
}

/** Milliseconds since `t0` (performance.now()), to 0.1 ms. */
export function elapsed(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10;
}
