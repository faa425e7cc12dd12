/**
 * The one clock shape: milliseconds since the Unix epoch, read through an
 * object passed in explicitly (pino's "Date.now() for testability", as an
 * interface). A component that reads the time more than once (a server, an
 * exporter, a token cache, a lock's deadline) takes a `clock?: Clock` option
 * defaulting to {@link systemClock}; one composition root passes the real one
 * down. A pure function that judges one instant (signature freshness, a
 * verification report's time) takes that instant as a value instead.
 *
 * ### Examples
 * ```ts
 * const fixed: Clock = { now: () => Date.parse("2025-06-01T12:00:00Z") };
 * isoTime(fixed); // "2025-06-01T12:00:00.000Z"
 * ```
 */
export interface Clock {
  /** Milliseconds since the Unix epoch (like `Date.now()`). */
  now(): number;
}

/** The machine's wall clock. */
export const systemClock: Clock = Object.freeze({ now: () => Date.now() });

/** The clock's current time as an RFC 3339 / ISO 8601 UTC string with milliseconds. */
export function isoTime(clock: Clock): string {
  return new Date(clock.now()).toISOString();
}

/** The clock's current time as a `Date`. */
export function dateOf(clock: Clock): Date {
  return new Date(clock.now());
}
