/**
 * Strict RFC 3339 date-times. `Date.parse` is not a validator: it accepts
 * "2026-02-30T00:00:00Z" (as March 2) and other rolled-over fields, so a signed
 * time checked with it is not the time that was written.
 */

const RFC3339_RE = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$/;

/**
 * Epoch milliseconds of a strict RFC 3339 date-time (section 5.6), or `undefined`.
 * Refuses dates and times that do not exist (Feb 30, Feb 29 outside leap years,
 * month 13, 24:00, minute or second 60, offsets beyond 23:59); fractions are
 * truncated to the millisecond; years 0000–9999 are taken literally.
 *
 * ### Examples
 * ```ts
 * parseRfc3339("2024-02-29T00:00:00Z") // 1709164800000
 * parseRfc3339("2026-02-30T00:00:00Z") // undefined
 * ```
 */
export function parseRfc3339(s: string): number | undefined {
  const m = RFC3339_RE.exec(s);
  if (!m) return undefined;
  const nums = [...m.slice(1, 7), m[10] ?? "0", m[11] ?? "0"].map(Number);
  const [y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, offH = 0, offM = 0] = nums;
  if (h > 23 || mi > 59 || sec > 59 || offH > 23 || offM > 59) return undefined;
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  date.setUTCFullYear(y, mo - 1, d);
  if (date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return undefined;
  const fracMs = m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0;
  date.setUTCHours(h, mi, sec, fracMs);
  const offMin = (m[9] === "-" ? -1 : 1) * (offH * 60 + offM);
  return date.getTime() - offMin * 60_000;
}
