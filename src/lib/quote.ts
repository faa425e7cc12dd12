/** Messages: attacker-controlled text is quoted, escaped and bounded. */

/** `"name"` with quotes, backslashes, control and non-ASCII characters escaped, cut to `max` characters. */
export function quote(s: string, max = 100): string {
  const cut = s.length > max;
  const body = (cut ? s.slice(0, max) : s).replace(/["\\]|[^\x20-\x7e]/g, (c) =>
    c === '"' || c === "\\" ? `\\${c}` : `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
  return `"${body}"${cut ? "…" : ""}`;
}

/** `s` with every byte outside printable ASCII replaced by `?`, cut to `max` characters. */
export function printable(s: string, max = 300): string {
  const cleaned = s.replace(/[^\x20-\x7e]/g, "?");
  return cleaned.length > max ? `${cleaned.slice(0, max)}…` : cleaned;
}
