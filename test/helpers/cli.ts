/**
 * Runs the built CLI (`node bin/autonomy.js`, so `npm run build` first) and other
 * real programs (skopeo, openssl, b3sum …) as child processes for integration
 * tests. Nothing is mocked: exit codes, stdout and stderr are the real ones.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The repository root (this file is test/helpers/cli.ts). */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The CLI launcher the package installs as `autonomy`. */
export const AUTONOMY_BIN = fileURLToPath(new URL("../../bin/autonomy.js", import.meta.url));

const DEFAULT_TIMEOUT_MS = 30_000;

export interface RunOptions {
  /** Extra environment; merged over the test's environment (a value of undefined removes the variable). */
  env?: Record<string, string | undefined>;
  /** Written to the child's stdin (stdin is closed either way). */
  input?: string | Uint8Array;
  /** Working directory; default the repository root. */
  cwd?: string;
  /** Kill (SIGKILL) and fail after this many ms; default 30 s. */
  timeoutMs?: number;
}

export interface RunResult {
  /** Exit status; -1 when the process died of a signal. */
  code: number;
  stdout: string;
  stderr: string;
  /** stdout exactly as written, for byte-exact hashing. */
  stdoutBytes: Buffer;
}

/** Runs `command args…` to completion; rejects only when it cannot start or times out. */
export function runProcess(command: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return new Promise((resolve, reject) => {
    const child = spawn(command, [...args], { cwd: opts.cwd ?? REPO_ROOT, env, stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (d: Buffer) => out.push(d));
    child.stderr.on("data", (d: Buffer) => err.push(d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      const stdoutBytes = Buffer.concat(out);
      const stderr = Buffer.concat(err).toString("utf8");
      if (timedOut) {
        reject(new Error(`${command} ${args.join(" ")} did not finish within ${timeoutMs} ms (killed)\nstderr: ${stderr}`));
        return;
      }
      resolve({ code: code ?? (signal ? -1 : 0), stdout: stdoutBytes.toString("utf8"), stderr, stdoutBytes });
    });
    // A child that exits without reading stdin must not crash the test with EPIPE.
    child.stdin.on("error", () => undefined);
    child.stdin.end(opts.input ?? "");
  });
}

/**
 * Runs `node bin/autonomy.js ARGS…` from the repository root. AUTONOMY_DEBUG is
 * cleared (unless the caller sets it) so a stack trace on stderr is a real bug.
 */
export function runCli(args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return runProcess(process.execPath, [AUTONOMY_BIN, ...args], { ...opts, env: { AUTONOMY_DEBUG: undefined, ...opts.env } });
}

/** A `--json` document from the CLI; every one carries `version` and `ok`, failures also `code`. */
export type CliJson = Record<string, unknown> & { version?: number; ok?: boolean; code?: string };

export interface JsonRunResult<T> extends RunResult {
  json: T;
}

/** Runs the CLI with `--json` appended and parses stdout (whatever the exit code). */
export async function runJson<T = CliJson>(args: readonly string[], opts: RunOptions = {}): Promise<JsonRunResult<T>> {
  const r = await runCli([...args, "--json"], opts);
  let json: T;
  try {
    json = JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`autonomy ${args.join(" ")} --json exited ${r.code} without JSON on stdout\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return { ...r, json };
}

/** A one-line description of a run, for assertion messages. */
export function describeRun(r: RunResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout.slice(0, 4000)}\nstderr: ${r.stderr.slice(0, 4000)}`;
}
