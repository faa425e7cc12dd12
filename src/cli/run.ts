import { Command, CommanderError } from "commander";
import { ExitCodes, UsageError } from "../lib/index.js";
import type { ExitCode } from "../lib/index.js";
import { reportError } from "./output.js";

/** Set when an action fails, so the one exit point can use the error's code. */
let actionExit: ExitCode | undefined;

/**
 * Wraps a command action: the action returns normally or throws; the error is
 * printed once and its exit code recorded. `--json` is read from the command's
 * options so failures are machine-readable too.
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      const cmd = args[args.length - 1];
      const json = cmd instanceof Command ? Boolean(cmd.optsWithGlobals().json) : false;
      actionExit = reportError(e, json);
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
  try {
    await program.parseAsync([...argv]);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === "commander.helpDisplayed" || e.code === "commander.version" || e.code === "commander.help") return ExitCodes.ok;
      const message = e.message.replace(/^error: /, "");
      return reportError(new UsageError(message, `run \`${commandPath(program, argv)} --help\` for usage`), json);
    }
    return reportError(e, json);
  }
  return actionExit ?? ExitCodes.ok;
}

/** The deepest known command named in argv, e.g. "autonomy oci pull", for the usage hint. */
function commandPath(program: Command, argv: readonly string[]): string {
  const path = [program.name()];
  let cmd = program;
  for (const arg of argv.slice(2)) {
    const sub = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (!sub) break;
    path.push(sub.name());
    cmd = sub;
  }
  return path.join(" ");
}

function applyRecursively(cmd: Command, f: (c: Command) => void): void {
  f(cmd);
  for (const sub of cmd.commands) applyRecursively(sub, f);
}

/** Entry-point helper: run, flush, exit with the code. */
export async function main(program: Command): Promise<void> {
  const code = await runProgram(program, process.argv);
  // An action may have set a failure exit code itself after printing its own report.
  if (code !== ExitCodes.ok || process.exitCode === undefined) process.exitCode = code;
}
