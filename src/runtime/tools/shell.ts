import { spawn } from "node:child_process";
import { z } from "zod";
import { RuntimeError } from "../errors.js";
import type { Tool } from "../types.js";
import { defineTool } from "./define-tool.js";

/** Options of {@link shellTool}. */
export interface ShellOptions {
  /** The command is killed (with its whole process group) after this long. Default 10 s. */
  timeoutMs?: number;
  /** Bytes kept per stream (stdout, stderr); the rest is read and dropped. Default 64 KiB. */
  maxOutputBytes?: number;
  /** Working directory. Default: the runtime's. */
  cwd?: string;
  /** Environment. Default: only PATH and LANG, so the runtime's secrets never reach an agent's command. */
  env?: Readonly<Record<string, string>>;
}

/** What `tool.shell` returns. A non-zero exit is an output, not a failure. */
export interface ShellOutput {
  exit_code: number;
  /** The signal that ended the command, when one did (exit_code is then 128 + its number). */
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
}

const ShellParams = z.strictObject({
  command: z.string().min(1).max(65_536).describe("Command line run by /bin/sh -c"),
});

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

/**
 * `tool.shell` {command} → {exit_code, signal, stdout, stderr, truncated}: runs
 * `/bin/sh -c command` in its own process group with a deadline and an output
 * bound; the whole group is killed when the call ends, however it ends, so a
 * background child (`sleep 60 &`) never outlives the call. It really runs, so only policy keeps it from agents (the example
 * policy forbids it). A timeout or spawn failure is RuntimeError(TOOL_FAILED).
 *
 * ### Examples
 * ```ts
 * const { output } = await shellTool({ timeoutMs: 2000 }).run({ command: "uname -s" });
 * ```
 */
export function shellTool(opts: ShellOptions = {}): Tool {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxOut = opts.maxOutputBytes ?? 64 * 1024;
  const env = opts.env ?? { PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin", LANG: "C.UTF-8" };
  return defineTool({
    name: "tool.shell",
    description: "Runs a command with /bin/sh -c (bounded time and output); returns exit code, stdout and stderr.",
    params: ShellParams,
    run: ({ command }, signal) => runShell(command, { timeoutMs, maxOut, env: { ...env }, ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}) }, signal),
  });
}

interface RunOpts {
  timeoutMs: number;
  maxOut: number;
  env: Record<string, string>;
  cwd?: string;
}

function runShell(command: string, o: RunOpts, signal?: AbortSignal): Promise<ShellOutput> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new RuntimeError("TOOL_FAILED", "tool.shell: cancelled before it started"));
      return;
    }
    const child = spawn("/bin/sh", ["-c", command], { cwd: o.cwd, env: o.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const out = collector(o.maxOut);
    const err = collector(o.maxOut);
    child.stdout.on("data", out.push);
    child.stderr.on("data", err.push);
    let stopped: string | undefined;
    // The command runs as the leader of its own process group (detached), so
    // -pid reaches everything it started that did not leave the group. The
    // group is killed whenever the call ends — the shell exited, failed to
    // start, timed out or was cancelled — so no background child outlives it.
    const reapGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      } catch {
        // ESRCH: nothing left in the group
      }
    };
    const killGroup = (why: string): void => {
      stopped ??= why;
      reapGroup();
    };
    const timer = setTimeout(() => killGroup(`timed out after ${o.timeoutMs} ms`), o.timeoutMs);
    const onAbort = (): void => killGroup("cancelled");
    signal?.addEventListener("abort", onAbort, { once: true });
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    };
    // The shell is gone: end its group now (a background child holding stdout open would otherwise keep the call waiting).
    child.on("exit", reapGroup);
    child.on("error", (e) => {
      done();
      reapGroup();
      reject(new RuntimeError("TOOL_FAILED", `tool.shell: could not start /bin/sh: ${e.message}`, { cause: e }));
    });
    child.on("close", (code, sig) => {
      done();
      if (stopped !== undefined) {
        reject(new RuntimeError("TOOL_FAILED", `tool.shell: ${stopped}`, { details: { stdout: out.text(), stderr: err.text() } }));
        return;
      }
      resolve({
        exit_code: code ?? 128 + (sig !== null ? (SIGNAL_NUMBERS[sig] ?? 0) : 0),
        signal: sig,
        stdout: out.text(),
        stderr: err.text(),
        truncated: out.truncated() || err.truncated(),
      });
    });
  });
}

function collector(max: number): { push: (b: Buffer) => void; text: () => string; truncated: () => boolean } {
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  return {
    push: (b: Buffer) => {
      if (size >= max) {
        over = over || b.length > 0;
        return;
      }
      const take = Math.min(b.length, max - size);
      if (take < b.length) over = true;
      chunks.push(take === b.length ? b : b.subarray(0, take));
      size += take;
    },
    text: () => Buffer.concat(chunks, size).toString("utf8"),
    truncated: () => over,
  };
}
