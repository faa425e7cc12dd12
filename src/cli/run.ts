import { Command, CommanderError } from "commander";
import { ExitCodes, UsageError, hasCode } from "../lib/index.js";
import type { ExitCode } from "../lib/index.js";
import { reportError } from "./output.js";

/**
 * What a command action returns when it completed but its result is a
 * failure the user must see in the exit code (a failing report, an
 * unexpected decision): the action has printed the result; the exit code is
 * applied by the one exit point ({@link runProgram}). Returning nothing means
 * success; an error is thrown, never encoded here.
 */
export interface CommandOutcome {
  readonly exitCode: ExitCode;
}

/** The outcome of a command whose result is pass/fail: 0 when `ok`, else `failure` (default 1). */
export function outcome(ok: boolean, failure: ExitCode = ExitCodes.failure): CommandOutcome {
  return { exitCode: ok ? ExitCodes.ok : failure };
}

/** Commands whose usage errors exit with another code than 2 (see {@link usageExitCode}). */
const usageExits = new WeakMap<Command, ExitCode>();

/**
 * Makes `cmd`'s usage errors (a missing or unknown flag, a bad value) exit
 * with `code` instead of 2: for a command whose 2 means something else to
 * systemd and scripts (`edged precheck`: 2 = state root invalid).
 */
export function usageExitCode(cmd: Command, code: ExitCode): Command {
  usageExits.set(cmd, code);
  return cmd;
}

function usageExitOf(cmd: Command, e: unknown, code: ExitCode): ExitCode {
  return hasCode(e, "USAGE") ? (usageExits.get(cmd) ?? code) : code;
}

/** Set when an action ends (its outcome, or a thrown error's code), so the one exit point can use it. */
let actionExit: ExitCode | undefined;

/**
 * Wraps a command action: the action returns nothing or a {@link CommandOutcome},
 * or throws; a thrown error is printed once. Either way the exit code is
 * recorded for {@link runProgram}, which alone decides it. `--json` is read
 * from the command's options so failures are machine-readable too.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<CommandOutcome | void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      const out = await fn(...args);
      actionExit = out?.exitCode ?? ExitCodes.ok;
    } catch (e) {
      const cmd = args[args.length - 1];
      const json = cmd instanceof Command ? Boolean(cmd.optsWithGlobals().json) : false;
      actionExit = cmd instanceof Command ? usageExitOf(cmd, e, reportError(e, json)) : reportError(e, json);
    }
  };
}

/** Parses argv and runs; returns the exit code (0 ok, 2 usage, else the error's code). */
export async function runProgram(program: Command, argv: readonly string[]): Promise<ExitCode> {
  program.exitOverride();
  applyRecursively(program, (c) => {
    c.exitOverride();
    // Commander's own error line is replaced by ours (error + hint, JSON with --json).
    c.configureOutput({ outputError: () => undefined });
  });
  const json = argv.includes("--json");
  actionExit = undefined;
  try {
    await program.parseAsync([...argv]);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return ExitCodes.ok;
      // Commander puts its suggestion on a second line ("\n(Did you mean --devices?)"); ours is one line
      // (the terminal-safe printer would show a raw newline as a visible escape).
      const message = e.message.replace(/^error: /, "").replace(/\s*\n\s*/g, " ");
      const { path, cmd } = commandAt(program, argv);
      const usage = new UsageError(message, `run \`${path} --help\` for usage`);
      return usageExitOf(cmd, usage, reportError(usage, json));
    }
    return reportError(e, json);
  }
  return actionExit ?? ExitCodes.ok;
}

/** The deepest known command named in argv, and its path, e.g. "autonomy oci pull", for the usage hint. */
function commandAt(program: Command, argv: readonly string[]): { path: string; cmd: Command } {
  const path = [program.name()];
  let cmd = program;
  for (const arg of argv.slice(2)) {
    const sub = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (!sub) break;
    path.push(sub.name());
    cmd = sub;
  }
  return { path: path.join(" "), cmd };
}

function applyRecursively(cmd: Command, f: (c: Command) => void): void {
  f(cmd);
  for (const sub of cmd.commands) applyRecursively(sub, f);
}

/** Entry-point helper: run, then set the exit code; the only place in the CLI that does. */
export async function main(program: Command): Promise<void> {
  process.exitCode = await runProgram(program, process.argv);
}

/**
 * The last resort of a process nobody waits on any more (its supervisor is
 * gone): exit with `code` after `ms` unless the graceful close ends first
 * (`before` runs first, e.g. to say why). Returns the cancel function.
 * Kept here so the exit code stays decided in this one file.
 */
export function exitAfter(ms: number, code: ExitCode, before?: () => void): () => void {
  const t = setTimeout(() => {
    before?.();
    process.exit(code);
  }, ms);
  t.unref();
  return () => clearTimeout(t);
}
