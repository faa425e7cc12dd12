/**
 * Builds plshim.so (plshim.c) with the machine's gcc into `outDir`, and the
 * environment that runs a child under it.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findCommand } from "../../helpers/peers.js";

const SOURCE = fileURLToPath(new URL("./plshim.c", import.meta.url));

export function buildShim(outDir: string): string {
  const gcc = findCommand("gcc");
  if (!gcc) throw new Error("gcc not found on the PATH: the LMDB power-loss test compiles an LD_PRELOAD shim with it. Install it: apt-get install -y gcc libc6-dev (or skip with AUTONOMY_TEST_SKIP=gcc)");
  const out = join(outDir, "plshim.so");
  const r = spawnSync(gcc, ["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o", out, SOURCE, "-ldl", "-lpthread"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`gcc could not build the power-loss shim (${SOURCE}): ${r.error?.message ?? r.stderr}`);
  return out;
}

/** Environment for a child whose writes under `dir` are logged to `log`. */
export function shimEnv(shim: string, dir: string, log: string): NodeJS.ProcessEnv {
  // UV_USE_IO_URING=0: libuv must reach the file system through libc, where the shim is (io_uring would bypass it).
  return { ...process.env, LD_PRELOAD: shim, PLSHIM_DIR: dir, PLSHIM_LOG: log, UV_USE_IO_URING: "0" };
}
