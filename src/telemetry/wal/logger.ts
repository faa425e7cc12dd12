import { createLogger } from "../../observability/index.js";

/** The structured logger the WAL writes its fail-hard and warning records to (pino-compatible). */
export interface WalLogger {
  warn(obj: Record<string, unknown>, msg: string): void;
  error(obj: Record<string, unknown>, msg: string): void;
}

let fallback: WalLogger | undefined;

/** JSON lines on stderr, created on first use so importing the WAL costs nothing. */
export function defaultWalLogger(): WalLogger {
  fallback ??= createLogger({ name: "autonomy.wal" });
  return fallback;
}
