/**
 * Shared by the LMDB power-loss tests: the workload run under the shim, the
 * checker child (one directory in, one JSON line out; replaced when LMDB
 * crashes it), and writing a crash image to disk.
 */
import { spawn, spawnSync } from "node:child_process";
import type { ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { REPO_ROOT } from "../../helpers/cli.js";
import type { CrashImage } from "./replay.js";
import { shimEnv } from "./shim.js";

export const HERE = join(REPO_ROOT, "test/edge/power-loss");

/** Runs `program` (in this folder) under the shim; returns the lines it printed. */
export function runUnderShim(shim: string, program: string, dir: string, log: string, args: string[]): string[] {
  const r = spawnSync(process.execPath, ["--import", "tsx", join(HERE, program), dir, ...args], { cwd: REPO_ROOT, env: shimEnv(shim, dir, log), encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0) throw new Error(`${program} failed (${String(r.status)} ${String(r.signal)}): ${r.stderr}`);
  return r.stdout.split("\n").filter((l) => l !== "");
}

export class Checker<T extends { error?: string }> {
  readonly child: ChildProcessWithoutNullStreams;
  #waiting: ((line: string) => void)[] = [];
  stderr = "";
  constructor(program: string) {
    // LMDB_RESTORE=safe: what lmdb-js does after a reboot (a new boot id), which a power cut always is.
    this.child = spawn(process.execPath, ["--import", "tsx", join(HERE, program)], { cwd: REPO_ROOT, stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, LMDB_RESTORE: "safe" } });
    createInterface({ input: this.child.stdout }).on("line", (l) => this.#waiting.shift()?.(l));
    this.child.stderr.on("data", (c: Buffer) => void (this.stderr += c.toString()));
    this.child.once("close", () => {
      for (const w of this.#waiting) w(JSON.stringify({ error: this.#exitError() }));
    });
  }
  get dead(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }
  #exitError(): string {
    return `checker exited (${String(this.child.exitCode)} ${String(this.child.signalCode)}): ${this.stderr.slice(-2000)}`;
  }
  check(dir: string): Promise<T> {
    if (this.dead) return Promise.resolve({ error: this.#exitError() } as T);
    return new Promise((resolve) => {
      this.#waiting.push((l) => resolve(JSON.parse(l) as T));
      this.child.stdin.write(dir + "\n");
    });
  }
  close(): void {
    this.child.stdin.end();
  }
}

export async function writeImage(image: CrashImage, dir: string): Promise<void> {
  await mkdir(dir);
  for (const d of image.dirs) await mkdir(join(dir, d), { recursive: true });
  for (const [p, bytes] of image.files) {
    await mkdir(dirname(join(dir, p)), { recursive: true });
    await writeFile(join(dir, p), bytes);
  }
}
