/**
 * `<dir>.rejected.jsonl`, BESIDE the WAL directory (like its locks and generation:
 * the seed names every file inside it, and a seed-exact directory holds only
 * those): records a receiver permanently refused, one JSON
 * line each, appended and fsynced before the exporter counts them as handled
 * (so telemetry.pos never passes a record that is neither delivered nor here).
 * Also notes OTLP partial successes (the receiver dropped some records of an
 * accepted batch without saying which).
 */
import { open } from "node:fs/promises";
import { dirname } from "node:path";
import { fsyncDir } from "../../lib/index.js";
import { besideWalDir, besideWrite } from "../wal/index.js";

export interface RejectedLine {
  kind: "rejected" | "partial_success";
  rejected_at: string;
  sink: string;
  node_id: string;
  status?: number;
  reason: string;
  /** kind "rejected": the refused record. */
  seq?: number;
  event_name?: string;
  priority?: number;
  event?: Record<string, unknown>;
  /** kind "partial_success": the batch the receiver accepted partially. */
  seqs?: number[];
  rejected_count?: number;
}

/** `<dir>.rejected.jsonl`, derived from the directory's canonical path like every file beside it. */
export function rejectedPath(dir: string): string {
  return besideWalDir(dir, "rejected.jsonl");
}

export async function appendRejected(dir: string, lines: readonly RejectedLine[]): Promise<void> {
  if (lines.length === 0) return;
  const path = rejectedPath(dir);
  await besideWrite(dir, "the dead letters", async () => {
    const fh = await open(path, "a", 0o600);
    try {
      await fh.writeFile(lines.map((l) => `${JSON.stringify(l)}\n`).join(""));
      await fh.sync();
    } finally {
      await fh.close();
    }
    // The file may have just been created: make its entry in the parent durable too.
    await fsyncDir(dirname(path));
  });
}
