/**
 * The one error family every domain builds on. A user-facing error always says
 * what is wrong (`message`) and what to do about it (`hint`); `code` is a stable
 * SCREAMING_SNAKE string from a closed list per domain, `exitCode` follows the
 * CLI contract in DESIGN.md §6 (1 failure, 2 usage, 4 verification, 5 WAL).
 */
export const ExitCodes = {
  ok: 0,
  failure: 1,
  usage: 2,
  /** `edged precheck` only (the original's code): the mTLS certificate or CA is unreadable or expires within 7 days. */
  certificates: 3,
  verification: 4,
  walFailHard: 5,
  /**
   * A usage error of a command whose 1/2/3/5 already mean something else to its callers
   * (`edged precheck`: config, state root, certificates, reconstruction): EX_USAGE of sysexits.h.
   */
  usageSysexits: 64,
} as const;
export type ExitCode = (typeof ExitCodes)[keyof typeof ExitCodes];

export interface AutonomyErrorOptions {
  hint: string;
  exitCode?: ExitCode;
  cause?: unknown;
  details?: Readonly<Record<string, unknown>>;
}

export class AutonomyError<C extends string = string> extends Error {
  readonly code: C;
  readonly hint: string;
  readonly exitCode: ExitCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: C, message: string, options: AutonomyErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = options.hint;
    this.exitCode = options.exitCode ?? ExitCodes.failure;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }

  /** A JSON-safe view for `--json` output; never includes the stack. */
  toJSON(): Record<string, unknown> {
    return { error: this.name, code: this.code, message: this.message, hint: this.hint, ...this.details };
  }
}

/** Usage errors: bad flags or arguments. Exit 2. */
export class UsageError extends AutonomyError<"USAGE"> {
  constructor(message: string, hint: string) {
    super("USAGE", message, { hint, exitCode: ExitCodes.usage });
  }
}

/** True when `e` is an AutonomyError carrying `code`. */
export function hasCode(e: unknown, code: string): boolean {
  return e instanceof AutonomyError && e.code === code;
}

/** Node's system errors carry `code` (ENOENT, ENOSPC, …). */
export function errnoCode(e: unknown): string | undefined {
  if (e && typeof e === "object" && "code" in e && typeof (e).code === "string") {
    return (e as { code: string }).code;
  }
  return undefined;
}

/** The message of anything thrown, for error text (never the stack). */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
