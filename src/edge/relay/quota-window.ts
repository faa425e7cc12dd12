/** The daily quota's window: which day (reset to reset) an instant belongs to, computed from the clock alone. */

export const DAY_MS = 86_400_000;
const HHMM = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;

/** Minutes after 00:00 UTC of an "HH:MM" reset time; undefined when malformed. */
export function resetMinute(hhmm: string): number | undefined {
  const m = HHMM.exec(hhmm);
  return m ? Number(m[1]) * 60 + Number(m[2]) : undefined;
}

/** The latest reset instant at or before `now` (ms since the epoch) for a reset at `minute` past 00:00 UTC. */
export function lastResetAt(now: number, minute: number): number {
  const d = new Date(now);
  const today = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()) + minute * 60_000;
  return today <= now ? today : today - DAY_MS;
}
