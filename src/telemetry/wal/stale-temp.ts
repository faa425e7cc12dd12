import type { WalFs } from "./fs.js";

/**
 * Seed 001 WS-3, the one rule for a fixed-name temp (`telemetry.safe_seq.tmp`,
 * and the exporter's `telemetry.pos.tmp`): a leftover temp is removed only
 * when its canonical file exists — the canonical value stands, so the temp can
 * only be a write that never happened. Without the canonical file it is left
 * alone. Best effort: a failed unlink changes nothing that recovery relies on.
 */
export async function removeStaleTemp(fs: WalFs, canonical: string, tmp: string): Promise<void> {
  if (!(await fs.exists(canonical)) || !(await fs.exists(tmp))) return;
  await fs.unlink(tmp).catch(() => undefined);
}
