import { AutonomyError, ExitCodes, messageOf, terminalSafe } from "../lib/index.js";
import type { ExitCode } from "../lib/index.js";

/** Version of every `--json` document; bump when a field changes meaning. */
export const JSON_OUTPUT_VERSION = 1;

export interface OutputOptions {
  json?: boolean;
}

/** Prints a command's result: versioned JSON with --json, else the text rendering. */
export function emit<T extends object>(result: T, opts: OutputOptions, text: (r: T) => string): void {
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ version: JSON_OUTPUT_VERSION, ...result }, null, 2)}\n`);
    return;
  }
  // Text renderings carry registry content (reasons, media types): no control or bidi character reaches the terminal.
  const out = text(result).split("\n").map(terminalSafe).join("\n");
  if (out.length > 0) process.stdout.write(out.endsWith("\n") ? out : `${out}\n`);
}

/**
 * The single place errors become output and exit codes. A known error prints
 * what is wrong and what to do; an unknown one prints one line and a pointer
 * to AUTONOMY_DEBUG for the stack, never the stack itself by default.
 */
export function reportError(e: unknown, json: boolean): ExitCode {
  if (e instanceof AutonomyError) {
    if (json) process.stdout.write(`${JSON.stringify({ version: JSON_OUTPUT_VERSION, ok: false, ...e.toJSON() }, null, 2)}\n`);
    // The message is one line by contract: a newline in it is attacker text too, escaped like the rest.
    process.stderr.write(`error: ${terminalSafe(e.message)}\nhint: ${e.hint.split("\n").map(terminalSafe).join("\n")}\n`);
    return e.exitCode;
  }
  const msg = messageOf(e);
  if (json) process.stdout.write(`${JSON.stringify({ version: JSON_OUTPUT_VERSION, ok: false, code: "INTERNAL", message: msg }, null, 2)}\n`);
  process.stderr.write(`error: unexpected failure: ${terminalSafe(msg)}\nhint: this is a bug; rerun with AUTONOMY_DEBUG=1 for details and report it\n`);
  if (process.env.AUTONOMY_DEBUG === "1" && e instanceof Error && e.stack) process.stderr.write(`${e.stack}\n`);
  return ExitCodes.failure;
}
