import { execFile } from "node:child_process";
import { access, readFile, realpath, stat } from "node:fs/promises";
import { constants } from "node:fs";
import { endianness } from "node:os";
import { delimiter, join } from "node:path";

/**
 * The architecture name seed 002 uses (Go's GOARCH spelling) for Node's
 * `process.arch`: x64 → amd64, arm64 → arm64, riscv64 → riscv64, ia32 → 386.
 */
export function goArch(nodeArch: string = process.arch): string {
  switch (nodeArch) {
    case "x64":
      return "amd64";
    case "ia32":
      return "386";
    case "ppc64":
      return endianness() === "LE" ? "ppc64le" : "ppc64";
    default:
      return nodeArch; // arm64, riscv64, s390x, loong64, arm, mips… are spelled alike
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** Set when the program could not be started (ENOENT …). */
  spawnError?: string;
}

/** Runs a program to completion (no shell); never rejects. */
export function runCommand(cmd: string, args: readonly string[], timeoutMs = 60_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, [...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err && typeof err.code === "string") {
        resolve({ code: -1, stdout, stderr, spawnError: err.code });
        return;
      }
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** `cmd args…` as one shell-safe line (for logs and cmd.txt). */
export function shellLine(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map(shellQuote).join(" ");
}

export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Where a program lives: PATH, then the sbin directories a non-login root shell may lack. */
export async function which(name: string): Promise<string | undefined> {
  const dirs = [...(process.env.PATH ?? "").split(delimiter), "/usr/local/sbin", "/usr/sbin", "/sbin"].filter((d) => d !== "");
  for (const d of dirs) {
    const p = join(d, name);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface FsType {
  /** The file system type (ext4, xfs, tmpfs, btrfs …), "unknown" when it cannot be told. */
  type: string;
  /** How it was found. */
  source: "mountinfo" | "stat -f" | "none";
  mount_point?: string;
  /** Per-mount options and the file system's own (superblock) options, from mountinfo. */
  mount_options?: string;
  super_options?: string;
  device?: string;
}

/**
 * The real file system type of the volume holding `dir`. Linux:
 * /proc/self/mountinfo, matched on the directory's device number (so bind
 * mounts and symlinks cannot mislead it), the longest mount point wins.
 * Fallback `stat -f -c %T`, which cannot tell ext4 from ext2/ext3 (they share a
 * magic number) — hence mountinfo first.
 */
export async function detectFsType(dir: string): Promise<FsType> {
  const real = await realpath(dir);
  try {
    const st = await stat(real);
    const dev = BigInt(st.dev);
    const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
    const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
    const info = await readFile("/proc/self/mountinfo", "utf8");
    let best: FsType | undefined;
    let bestLen = -1;
    for (const line of info.split("\n")) {
      const m = parseMountinfoLine(line);
      if (!m || m.major !== major || m.minor !== minor) continue;
      if (!isUnder(real, m.mountPoint) || m.mountPoint.length <= bestLen) continue;
      best = { type: m.fsType, source: "mountinfo", mount_point: m.mountPoint, mount_options: m.options, super_options: m.superOptions, device: m.source };
      bestLen = m.mountPoint.length;
    }
    if (best) return best;
  } catch {
    // not Linux, or /proc is not mounted: fall back
  }
  const r = await runCommand("stat", ["-f", "-c", "%T", real], 10_000);
  const t = r.stdout.trim();
  if (r.code === 0 && t !== "" && t !== "UNKNOWN") return { type: t, source: "stat -f" };
  return { type: "unknown", source: "none" };
}

interface MountinfoLine {
  major: number;
  minor: number;
  mountPoint: string;
  options: string;
  fsType: string;
  source: string;
  superOptions: string;
}

/** One /proc/self/mountinfo line (proc(5)): id parent major:minor root mountpoint options [optional…] - fstype source superoptions. */
export function parseMountinfoLine(line: string): MountinfoLine | undefined {
  const parts = line.split(" ");
  const sep = parts.indexOf("-", 6);
  if (parts.length < 10 || sep < 0) return undefined;
  const [maj, min] = (parts[2] ?? "").split(":").map(Number);
  if (maj === undefined || min === undefined || !Number.isInteger(maj) || !Number.isInteger(min)) return undefined;
  return {
    major: maj,
    minor: min,
    mountPoint: unescapeMount(parts[4] ?? ""),
    options: parts[5] ?? "",
    fsType: parts[sep + 1] ?? "unknown",
    source: unescapeMount(parts[sep + 2] ?? ""),
    superOptions: parts[sep + 3] ?? "",
  };
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

function isUnder(path: string, mountPoint: string): boolean {
  if (mountPoint === "/") return path.startsWith("/");
  return path === mountPoint || path.startsWith(`${mountPoint}/`);
}

/** A single path segment for the evidence tree (`ext2/ext3` from stat -f becomes `ext2-ext3`). */
export function fsSegment(type: string): string {
  const s = type.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "");
  return s === "" ? "unknown" : s;
}

/**
 * The kernel ring buffer now, or why it cannot be read (never made up):
 * dmesg missing, or refused (kernel.dmesg_restrict for non-root, or a sandbox).
 */
export async function dmesgSnapshot(): Promise<{ ok: boolean; text: string }> {
  const r = await runCommand("dmesg", [], 15_000);
  if (r.spawnError === "ENOENT") return { ok: false, text: "dmesg not available: the dmesg program is not installed (util-linux)" };
  if (r.spawnError) return { ok: false, text: `dmesg not available: it could not be started (${r.spawnError})` };
  if (r.code !== 0) {
    const restrict = await readFile("/proc/sys/kernel/dmesg_restrict", "utf8").then((s) => s.trim()).catch(() => "unreadable");
    return { ok: false, text: `dmesg not available: \`dmesg\` exited ${r.code}: ${r.stderr.trim() || "(no message)"} (uid ${process.getuid?.() ?? "n/a"}, kernel.dmesg_restrict=${restrict})` };
  }
  return { ok: true, text: r.stdout };
}

/** The dmesg.txt of a cell: the ring buffer before and after, and what appeared in between. */
export function renderDmesg(before: { ok: boolean; text: string }, after: { ok: boolean; text: string }, startedAt: Date, endedAt: Date): string {
  const lines = [`# kernel ring buffer (\`dmesg\`) before and after the cell; before: ${startedAt.toISOString()}, after: ${endedAt.toISOString()}`];
  if (before.ok && after.ok) {
    const seen = new Set(before.text.split("\n"));
    const fresh = after.text.split("\n").filter((l) => l !== "" && !seen.has(l));
    lines.push(`# ${fresh.length} line(s) appeared during the cell`, "", "=== new during the cell ===", ...fresh);
  }
  lines.push("", "=== before ===", before.text.trimEnd(), "", "=== after ===", after.text.trimEnd(), "");
  return lines.join("\n");
}
