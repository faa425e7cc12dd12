import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCommand, shellLine, which } from "./platform.js";
import type { RunResult } from "./platform.js";

/** The file systems a loop cell can be made of (seed 002's matrix), with the package that ships their mkfs. */
export const LOOP_FS = { ext4: { mkfs: "mkfs.ext4", pkg: "e2fsprogs", args: ["-q", "-F"] }, xfs: { mkfs: "mkfs.xfs", pkg: "xfsprogs", args: ["-q", "-f"] } } as const;
export type LoopFs = keyof typeof LOOP_FS;

/** Sparse image size: mkfs.xfs refuses file systems under 300 MB; only written blocks use disk. */
export const LOOP_IMAGE_BYTES = 512 * 1024 * 1024;

/**
 * A failed probe is `notRun` when this process may not build a loop cell at all
 * (not Linux, not root): the cell is honestly SKIPPED. Anything else (a missing
 * program, no loop device) on a machine that should run the cell is a FAIL.
 */
export type Probe = { ok: true; tools: { mkfs: string; losetup: string; mount: string; umount: string } } | { ok: false; reason: string; notRun: boolean };

/**
 * Whether a loop-device cell can be built here, and if not, exactly why: not
 * Linux, not root, the mkfs missing, losetup/mount missing, or loop devices
 * unavailable (probed with `losetup -f`, which finds a free device without
 * attaching anything). Nothing is installed: only detected (`npm test` installs
 * the programs before it runs the lab test: scripts/ensure-peers.ts).
 */
export async function probeLoop(fs: LoopFs): Promise<Probe> {
  if (process.platform !== "linux") return { ok: false, notRun: true, reason: `loop devices need Linux (platform: ${process.platform})` };
  const uid = process.getuid?.();
  if (uid !== 0) return { ok: false, notRun: true, reason: `not root (uid ${String(uid)}): mkfs, losetup and mount need root; rerun as root` };
  const mkfs = await which(LOOP_FS[fs].mkfs);
  if (!mkfs) return { ok: false, notRun: false, reason: `${LOOP_FS[fs].mkfs} missing (install ${LOOP_FS[fs].pkg})` };
  const losetup = await which("losetup");
  const mount = await which("mount");
  const umount = await which("umount");
  if (!losetup || !mount || !umount) return { ok: false, notRun: false, reason: `${!losetup ? "losetup" : !mount ? "mount" : "umount"} missing (install util-linux / mount)` };
  const free = await runCommand(losetup, ["-f"], 15_000);
  if (free.code !== 0) return { ok: false, notRun: false, reason: `loop devices unavailable in this sandbox: \`losetup -f\` failed: ${oneLine(free)}` };
  return { ok: true, tools: { mkfs, losetup, mount, umount } };
}

function oneLine(r: RunResult): string {
  return (r.spawnError ?? (r.stderr.trim() || r.stdout.trim() || `exit ${r.code}`)).replace(/\s+/g, " ");
}

export interface LoopMount {
  fs: LoopFs;
  mountPoint: string;
  device: string;
  image: string;
  /** Unmount, detach, delete the image; returns the problems (empty when clean). Idempotent. */
  teardown(): Promise<string[]>;
}

/** Thrown when a loop cell cannot be set up; the cell then FAILS with this reason. */
export class LoopSetupError extends Error {}

/**
 * Builds the cell's file system: a sparse image in a temp directory, mkfs,
 * `losetup --find --show` (attached explicitly, so teardown detaches exactly
 * that device), `mount -t <fs>`. Anything set up is torn down again if a later
 * step fails, and on SIGINT/SIGTERM while mounted. `say` receives every command
 * and its output (autonomy.log).
 */
export async function setupLoop(fs: LoopFs, tools: Extract<Probe, { ok: true }>["tools"], say: (line: string) => void, imageBytes = LOOP_IMAGE_BYTES): Promise<LoopMount> {
  const root = await mkdtemp(join(tmpdir(), `autonomy-lab-${fs}-`));
  const image = join(root, `${fs}.img`);
  const mountPoint = join(root, "mnt");
  let device: string | undefined;
  let mounted = false;
  let done = false;

  const run = async (cmd: string, args: string[]): Promise<RunResult> => {
    say(`$ ${shellLine(cmd, args)}`);
    const r = await runCommand(cmd, args, 120_000);
    const out = `${r.stdout}${r.stderr}`.trim();
    say(`  exit ${r.spawnError ?? r.code}${out ? `: ${out.replace(/\n/g, "\n  ")}` : ""}`);
    return r;
  };

  // Synchronous teardown for signals: the event loop will not run again.
  const onSignal = (sig: NodeJS.Signals): void => {
    if (mounted) spawnSync(tools.umount, ["-l", mountPoint]);
    if (device) spawnSync(tools.losetup, ["-d", device]);
    rmSync(root, { recursive: true, force: true });
    process.stderr.write(`[lab] ${sig}: loop cell ${fs} torn down (${device ?? "no device"})\n`);
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const teardown = async (): Promise<string[]> => {
    if (done) return [];
    done = true;
    const problems: string[] = [];
    if (mounted) {
      let r = await run(tools.umount, [mountPoint]);
      for (let attempt = 0; r.code !== 0 && attempt < 3; attempt++) {
        await new Promise((res) => setTimeout(res, 200));
        r = await run(tools.umount, [mountPoint]);
      }
      if (r.code !== 0) {
        problems.push(`umount ${mountPoint}: ${oneLine(r)}; lazily unmounted`);
        await run(tools.umount, ["-l", mountPoint]);
      }
      mounted = false;
    }
    if (device) {
      const r = await run(tools.losetup, ["-d", device]);
      if (r.code !== 0) problems.push(`losetup -d ${device}: ${oneLine(r)}`);
    }
    await rm(root, { recursive: true, force: true }).catch((e: unknown) => void problems.push(`rm ${root}: ${String(e)}`));
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    say(problems.length === 0 ? `loop cell ${fs} torn down: unmounted, ${device ?? "no device"} detached, image deleted` : `loop cell ${fs} teardown problems: ${problems.join("; ")}`);
    return problems;
  };

  try {
    say(`sparse image ${image} (${imageBytes} bytes)`);
    const fh = await open(image, "w", 0o600);
    try {
      await fh.truncate(imageBytes);
    } finally {
      await fh.close();
    }
    const mk = await run(tools.mkfs, [...LOOP_FS[fs].args, image]);
    if (mk.code !== 0) throw new LoopSetupError(`${LOOP_FS[fs].mkfs} failed: ${oneLine(mk)}`);
    const at = await run(tools.losetup, ["--find", "--show", image]);
    if (at.code !== 0 || !at.stdout.trim().startsWith("/dev/")) throw new LoopSetupError(`loop devices unavailable in this sandbox: \`losetup --find --show\` failed: ${oneLine(at)}`);
    device = at.stdout.trim();
    await mkdir(mountPoint);
    const m = await run(tools.mount, ["-t", fs, device, mountPoint]);
    if (m.code !== 0) throw new LoopSetupError(`mount -t ${fs} ${device} failed: ${oneLine(m)}`);
    mounted = true;
    return { fs, mountPoint, device, image, teardown };
  } catch (e) {
    await teardown();
    if (e instanceof LoopSetupError) throw e;
    throw new LoopSetupError(`loop cell setup failed: ${e instanceof Error ? e.message : String(e)}`);
  }
}
