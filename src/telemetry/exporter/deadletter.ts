/**
 * telemetry.rejected.jsonl: records a receiver permanently refused, one JSON
 * line each, appended and fsynced before the exporter counts them as handled
 * (so telemetry.pos never passes a record that is neither delivered nor here).
 * Also notes OTLP partial successes (the receiver dropped some records of an
 * accepted batch without saying which).
 */
import { open } from "node:fs/promises";
import { join } from "node:path";
import { fsyncDir } from "../../lib/index.js";

export const REJECTED_FILE = "telemetry.rejected.jsonl";

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

export function rejectedPath(dir: string): string {
  return join(dir, REJECTED_FILE);
}

export async function appendRejected(dir: string, lines: readonly RejectedLine[]): Promise<void> {
  if (lines.length === 0) return;
  const fh = await open(rejectedPath(dir), "a", 0o600);
  try {
    await fh.writeFile(lines.map((l) => `${JSON.stringify(l)}\n`).join(""));
    await fh.sync();
  } finally {
    await fh.close();
  }
  // The file may have just been created: make its directory entry durable too.
  await fsyncDir(dir);
}
