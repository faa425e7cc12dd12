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

/**
 * Characters that must never reach a terminal from text someone else wrote:
 * C0 controls (ESC starts a sequence that can erase or rewrite a line; CR
 * returns to its start), DEL, C1 controls (0x9b is a one-byte CSI), the bidi
 * controls that reorder what is shown (U+202E …), and line/paragraph separators.
 */
// eslint-disable-next-line no-control-regex
const UNSAFE_FOR_TERMINAL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/**
 * One line of text as printed to a terminal: every unsafe character shown as
 * a visible `\u{…}` escape, nothing else changed. Every text rendering passes
 * through it (cli/output.ts), so registry content cannot forge a "✓" line.
 */
export function terminalSafe(line: string): string {
  return line.replace(UNSAFE_FOR_TERMINAL, (c) => `\\u{${c.charCodeAt(0).toString(16)}}`);
}
