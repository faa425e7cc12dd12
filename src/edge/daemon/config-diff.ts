import { isDeepStrictEqual } from "node:util";
import type { EdgeConfig } from "../config/schema.js";
import type { BandwidthConfig } from "../types.js";

/** The parts of edge.toml a running edged cannot change in place, as the file names them. */
const RESTART_KEYS: readonly [string, (c: EdgeConfig) => unknown][] = [
  ["node.id", (c) => c.node.id],
  ["node.state_root", (c) => c.node.stateRoot],
  ["transport", (c) => c.transport],
  ["relay", (c) => c.relay],
  ["scheduler", (c) => c.scheduler],
  ["storage", (c) => c.storage],
  ["peers", (c) => c.peers],
  ["bootstrap", (c) => c.bootstrap],
];

/** Keys of `next` that differ from the running `current` and need a restart (bandwidth never does). */
export function restartRequired(current: EdgeConfig, next: EdgeConfig): string[] {
  return RESTART_KEYS.filter(([, get]) => !isDeepStrictEqual(get(current), get(next))).map(([k]) => k);
}

export function sameBandwidth(a: BandwidthConfig, b: BandwidthConfig): boolean {
  return a.bytes_per_second === b.bytes_per_second && a.daily_quota_bytes === b.daily_quota_bytes && a.quota_reset_utc === b.quota_reset_utc;
}
