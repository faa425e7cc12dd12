/**
 * The real system calls behind every `ack` (seed 001 §3.5/§3.6, S1, S8, S9):
 * the built CLI (`bin/autonomy.js wal append`) runs under `strace -f`, and for
 * every `ack N` it prints, the trace must show, in this order of completion:
 *
 *   write of frame N to telemetry.wal → fsync/fdatasync(telemetry.wal)
 *   → write of a safe point ≥ N to telemetry.safe_seq.tmp → fsync(tmp)
 *   → rename(tmp, telemetry.safe_seq) → fsync(the WAL directory)
 *   → write(1, "ack N")
 *
 * Node runs file I/O on libuv's threadpool, so the calls come from several
 * threads: `-f` follows them, strace's own line order is the order of events
 * (a call split by another thread's output is "<unfinished ...>" at entry and
 * "<... resumed>" at exit), and descriptors are mapped to paths from the
 * openat/close calls around them. The recording and power-loss file systems
 * used elsewhere stand in for the kernel; this test asks the kernel itself.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { REPO_ROOT } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";

const CLI = join(REPO_ROOT, "bin/autonomy.js");
const TRACED = "/^(open|openat|creat|write|pwrite64|writev|pwritev|pwritev2|fsync|fdatasync|rename|renameat|renameat2|close)";

interface Call {
  pid: number;
  name: string;
  args: string;
  ret: number;
  /** Positions of entry and exit in the trace (line order is event order). */
  enter: number;
  exit: number;
  /** For calls on a descriptor: the path it was opened as, resolved at entry. */
  path?: string;
}

/** `\xNN` escapes (strace -xx) back to text. */
function unhex(s: string): string {
  return Buffer.from(s.replace(/\\x([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), "latin1").toString("utf8");
}

function strings(args: string): string[] {
  return [...args.matchAll(/"((?:\\x[0-9a-f]{2})*)"/g)].map((m) => unhex(m[1] ?? ""));
}

/** Parses `strace -f -qq -xx` output into completed calls, in entry order, each with the path of its descriptor. */
function parseTrace(text: string): Call[] {
  const open = new Map<number, { name: string; args: string; enter: number }>();
  const calls: Call[] = [];
  const fds = new Map<number, string>();
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) return;
    const pid = Number(m[1]);
    const rest = m[2] ?? "";
    let name: string;
    let args: string;
    let enter = i;
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(rest);
    if (resumed) {
      const pending = open.get(pid);
      if (!pending) return;
      open.delete(pid);
      ({ name, enter } = pending);
      args = pending.args + (resumed[2] ?? "");
    } else {
      const call = /^(\w+)\((.*)$/.exec(rest);
      if (!call) return;
      name = call[1] ?? "";
      args = call[2] ?? "";
      if (args.endsWith("<unfinished ...>")) {
        open.set(pid, { name, args: args.slice(0, -"<unfinished ...>".length), enter: i });
        return;
      }
    }
    const retM = /\)\s+=\s+(-?\d+)/.exec(args);
    const ret = retM ? Number(retM[1]) : -1;
    const c: Call = { pid, name, args, ret, enter, exit: i };
    const fd = /^\s*(\d+)[,)]/.exec(args);
    if (fd && !["openat", "open", "creat", "rename", "renameat", "renameat2"].includes(name)) {
      const path = fds.get(Number(fd[1]));
      if (path !== undefined) c.path = path;
    }
    calls.push(c);
    // Descriptor table as of this call's exit (a call using an fd entered after the open exited).
    if ((name === "openat" || name === "open" || name === "creat") && ret >= 0) fds.set(ret, strings(args)[0] ?? "");
    if (name === "close" && fd) fds.delete(Number(fd[1]));
  });
  return calls.sort((a, b) => a.enter - b.enter);
}

const isWrite = (c: Call): boolean => /^(write|pwrite64|writev|pwritev2?)$/.test(c.name);
const isSync = (c: Call): boolean => c.name === "fsync" || c.name === "fdatasync";
const isRename = (c: Call): boolean => /^rename(at2?)?$/.test(c.name);
/** The bytes a write call carried (all of its buffers). */
const written = (c: Call): string => strings(c.args).join("");

/** Latest call matching `pred` that completed before position `before`. */
function latest(calls: Call[], before: number, pred: (c: Call) => boolean): Call | undefined {
  let best: Call | undefined;
  for (const c of calls) if (c.exit < before && c.ret >= 0 && pred(c) && (!best || c.exit > best.exit)) best = c;
  return best;
}

/** Checks the seed's chain for one ack; returns what is missing, or undefined when the chain is complete. */
function chainFor(calls: Call[], ack: Call, seq: number, dir: string): string | undefined {
  const wal = join(dir, "telemetry.wal");
  const tmp = join(dir, "telemetry.safe_seq.tmp");
  const safe = join(dir, "telemetry.safe_seq");
  const dirSync = latest(calls, ack.enter, (c) => isSync(c) && c.path === dir);
  if (!dirSync) return "no fsync of the WAL directory before the ack";
  const rename = latest(calls, dirSync.enter, (c) => isRename(c) && strings(c.args).join(" ") === `${tmp} ${safe}`);
  if (!rename) return "no rename(telemetry.safe_seq.tmp → telemetry.safe_seq) completed before the directory fsync";
  const tmpSync = latest(calls, rename.enter, (c) => isSync(c) && c.path === tmp);
  if (!tmpSync) return "no fsync of telemetry.safe_seq.tmp completed before the rename";
  const tmpWrite = latest(calls, tmpSync.enter, (c) => isWrite(c) && c.path === tmp);
  if (!tmpWrite) return "no write to telemetry.safe_seq.tmp completed before its fsync";
  const bytes = Buffer.from(written(tmpWrite), "latin1");
  if (bytes.length !== 8 || Number(bytes.readBigUInt64LE(0)) < seq) return `the safe point written (${bytes.toString("hex")}) does not cover seq ${seq}`;
  const walSync = latest(calls, tmpWrite.enter, (c) => isSync(c) && c.path === wal);
  if (!walSync) return "no fsync of telemetry.wal completed before the safe point was written";
  const frame = latest(calls, walSync.enter, (c) => isWrite(c) && c.path === wal && written(c).includes(`{"seq":${seq},`));
  if (!frame) return `no write of frame ${seq} to telemetry.wal completed before that fsync`;
  return undefined;
}

function traceAppend(dir: string, out: string, input: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn("strace", ["-f", "-qq", "-xx", "-s", "65536", "-e", `trace=${TRACED}`, "-o", out, process.execPath, CLI, "wal", "append", "--dir", dir, "--segment-bytes", "0"], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

needs("strace").describe("autonomy wal append under strace: the real system calls before every ack", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), "wal-strace-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("every ack N follows: frame N written → WAL fsync → safe point ≥ N written to the temp → temp fsync → rename → directory fsync", async () => {
    const dir = join(root, "wal");
    const out = join(root, "trace.txt");
    const n = 40;
    const input = Array.from({ length: n }, (_, i) => JSON.stringify({ i, text: i % 3 === 0 ? "é→😀" : "ascii" })).join("\n") + "\n";
    const r = await traceAppend(dir, out, input);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(Array.from({ length: n }, (_, i) => `ack ${i + 1}\n`).join(""));
    const calls = parseTrace(await readFile(out, "utf8"));
    const acks = calls.filter((c) => isWrite(c) && /^\s*1,/.test(c.args) && /^ack \d+\n$/.test(written(c)));
    expect(acks.map((a) => written(a))).toEqual(Array.from({ length: n }, (_, i) => `ack ${i + 1}\n`));
    const missing = acks.map((a, i) => [i + 1, chainFor(calls, a, i + 1, dir)] as const).filter(([, why]) => why !== undefined);
    expect(missing).toEqual([]);
  }, 60_000);

  it("the checker fails a trace whose directory fsync comes after the ack (it can tell a broken order)", async () => {
    const dir = join(root, "wal2");
    const out = join(root, "trace2.txt");
    const r = await traceAppend(dir, out, `{"a":1}\n`);
    expect(r.code, r.stderr).toBe(0);
    const calls = parseTrace(await readFile(out, "utf8"));
    const ack = calls.find((c) => isWrite(c) && written(c) === "ack 1\n");
    expect(ack).toBeDefined();
    if (!ack) return;
    expect(chainFor(calls, ack, 1, dir)).toBeUndefined();
    // Move every directory fsync after the ack: the same trace must now fail the check.
    const moved = calls.map((c) => (isSync(c) && c.path === dir ? { ...c, enter: ack.exit + 1, exit: ack.exit + 2 } : c));
    expect(chainFor(moved, ack, 1, dir)).toMatch(/no fsync of the WAL directory/);
    expect(chainFor(calls, ack, 2, dir)).toMatch(/does not cover seq 2|no write of frame 2/);
  }, 60_000);
});
