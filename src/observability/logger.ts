import { pino } from "pino";
import type { DestinationStream, Level, Logger } from "pino";

/** What every logger censors: secrets never reach a log line, whatever a caller passes. */
export const REDACTED = "[REDACTED]";

const SECRET_KEYS = [
  "authorization",
  "proxy-authorization",
  "cookie",
  "set-cookie",
  "password",
  "passphrase",
  "secret",
  "token",
  "access_token",
  "refresh_token",
  "id_token",
  "bearer",
  "api_key",
  "apiKey",
  "private_key",
  "privateKey",
  "key_password",
  "client_secret",
] as const;

/**
 * The redaction paths: each secret key at the top level of a log object, one
 * level down (`{ registry: { password } }`), and in request/response headers
 * (`req.headers.authorization`, `headers.cookie`). pino's redaction matches
 * fixed paths (it is compiled once, at construction), so deeper nesting is not
 * covered: log secrets' holders flat, or not at all.
 */
export const REDACT_PATHS: readonly string[] = Object.freeze(
  SECRET_KEYS.flatMap((k) => {
    const p = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
    const dot = p.startsWith("[") ? p : `.${p}`;
    return [p, `*${dot}`, `headers${dot}`, `req.headers${dot}`, `res.headers${dot}`, `request.headers${dot}`];
  }),
);

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Dotted component name, e.g. `autonomy.wal`; the `name` field of every line. */
  name: string;
  /** Lowest level written. Default `info`. */
  level?: Level | "silent";
  /**
   * Where the JSON lines go: a pino destination or any writable stream (tests).
   * Default: stderr, synchronously, so a line written just before a crash or
   * `process.exit` is not lost (stdout carries command output).
   */
  destination?: DestinationStream | NodeJS.WritableStream;
}

/**
 * The one pino logger factory: JSON lines with `level`, `time`, `name`, `msg`,
 * no pid/hostname (`base: undefined`), and the secrets of {@link REDACT_PATHS}
 * replaced by {@link REDACTED}. Build loggers once (at startup), not per call.
 *
 * ### Examples
 * ```ts
 * const log = createLogger({ name: "autonomy.telemetry.exporter", level: "warn" });
 * log.warn({ url, headers: { authorization: "Bearer …" } }, "RECEIVER_REFUSED"); // authorization: "[REDACTED]"
 * ```
 */
export function createLogger(opts: LoggerOptions): Logger {
  const destination = opts.destination ?? pino.destination({ fd: 2, sync: true });
  return pino({ name: opts.name, base: undefined, level: opts.level ?? "info", redact: { paths: [...REDACT_PATHS], censor: REDACTED } }, destination);
}
