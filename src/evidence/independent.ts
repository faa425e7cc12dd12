/**
 * Seed 002's step 3 used an independent `wal_verify.py`; so do we: the
 * Python 3 verifier in scripts/ (standard library only, no code shared with
 * src/telemetry) runs on the same fixture as our own read-only inspection, and
 * the two must agree on every invariant, the fail-hard cause, the violation
 * codes and the frame counts. A missing python3 fails the step with the
 * command that installs it; it is never skipped.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { VERIFY_INVARIANTS } from "../telemetry/index.js";
import type { WalInspection } from "../telemetry/index.js";

export const INDEPENDENT_VERIFIER = fileURLToPath(new URL("../../scripts/wal_verify.py", import.meta.url));
const INSTALL_HINT = "install Python 3 (Debian/Ubuntu: apt-get install -y python3; Alpine: apk add python3; macOS: brew install python) or point AUTONOMY_PYTHON at one";

export interface IndependentResult {
  verifier: string;
  command: string[];
  exit_code: number | null;
  /** wal_verify.py's report, as it printed it; null when it did not run. */
  report: Record<string, unknown> | null;
  /** Both verifiers reached the same verdict on every compared field. */
  agree: boolean;
  /** What differs (ours vs theirs), or why the verifier could not run. */
  differences: string[];
}

export interface IndependentOptions {
  arch: string;
  fs: string;
  /** The Python interpreter; default $AUTONOMY_PYTHON, else `python3` on PATH. */
  python?: string;
  /** The verifier script; default scripts/wal_verify.py of this checkout. */
  script?: string;
}

function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; error?: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.on("error", (error: NodeJS.ErrnoException) => resolve({ code: null, stdout, stderr, error }));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs wal_verify.py on `dir` and compares its verdict with our inspection of the same directory. */
export async function crossCheck(dir: string, ours: WalInspection, o: IndependentOptions): Promise<IndependentResult> {
  const python = o.python ?? process.env.AUTONOMY_PYTHON ?? "python3";
  const script = o.script ?? INDEPENDENT_VERIFIER;
  const command = [python, script, "--dir", dir, "--arch", o.arch, "--fs", o.fs];
  const failed = (why: string, exit: number | null = null, report: Record<string, unknown> | null = null): IndependentResult =>
    ({ verifier: script, command, exit_code: exit, report, agree: false, differences: [why] });
  if (!existsSync(script)) return failed(`the independent verifier ${script} is missing from this installation (it ships in scripts/ of the source tree)`);
  const r = await run(python, command.slice(1));
  if (r.error?.code === "ENOENT") return failed(`${python} not found: the independent verifier needs Python 3; ${INSTALL_HINT}`);
  if (r.error) return failed(`${python} could not run: ${r.error.message}`);
  let report: Record<string, unknown>;
  try {
    report = JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    return failed(`wal_verify.py exited ${String(r.code)} without a JSON report: ${r.stderr.trim().slice(0, 500)}`, r.code);
  }
  const differences = compare(ours, report);
  const expectedExit = ours.violations.length === 0 ? 0 : ours.fail_hard ? 5 : 1;
  if (r.code !== expectedExit) differences.push(`exit status: ours implies ${expectedExit}, wal_verify.py exited ${String(r.code)}`);
  return { verifier: script, command, exit_code: r.code, report, agree: differences.length === 0, differences };
}

/** Field-by-field comparison of the verdicts (messages may be worded differently; verdicts may not). */
export function compare(ours: WalInspection, theirs: Record<string, unknown>): string[] {
  const out: string[] = [];
  const diff = (what: string, a: unknown, b: unknown): void => {
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push(`${what}: ours ${JSON.stringify(a)}, wal_verify.py ${JSON.stringify(b)}`);
  };
  const inv = (theirs.invariants ?? {}) as Record<string, { pass?: unknown } | undefined>;
  for (const k of VERIFY_INVARIANTS) diff(`${k}.pass`, ours.invariants[k].pass, inv[k]?.pass);
  diff("fail_hard", ours.fail_hard, theirs.fail_hard ?? null);
  const codes = (vs: unknown): string[] => (Array.isArray(vs) ? vs.map((x) => String((x as { code?: unknown }).code)).sort() : []);
  diff("violation codes", codes(ours.violations), codes(theirs.violations));
  diff("pass", ours.violations.length === 0, theirs.pass);
  const wal = (theirs.wal ?? {}) as Record<string, unknown>;
  diff("wal.frames", ours.frames.length, wal.frames);
  diff("wal.safe_seq", ours.safe_seq, wal.safe_seq);
  diff("wal.max_seq", ours.max_seq, wal.max_seq);
  diff("wal.bytes", ours.wal_bytes, wal.bytes);
  diff("wal.torn_tail_bytes", ours.torn_tail_bytes, wal.torn_tail_bytes);
  diff("wal.base", ours.base, wal.base);
  diff("wal.segments", ours.segments, wal.segments);
  return out;
}
