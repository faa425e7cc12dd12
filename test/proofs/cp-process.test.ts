/**
 * The proofs' control-plane launcher runs the real built `autonomy serve`
 * (`npm run build` first): ready by /readyz, an owner token that works,
 * SIGKILL and restart on the same database and port with the data kept,
 * SIGTERM ends it with exit 0, and a server that cannot start is an error
 * quoting its output.
 */
import { afterEach, describe, expect, it } from "vitest";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpClient } from "../../src/cpapi/index.js";
import { launchControlPlane, maskTokens } from "../../src/proofs/index.js";
import type { LaunchedControlPlane } from "../../src/proofs/index.js";
import { codeOf } from "../helpers/caught.js";

describe("ControlPlaneProcess", () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function launched(args: string[] = []): Promise<{ cp: LaunchedControlPlane; dir: string }> {
    const dir = await mkdtemp(join(tmpdir(), "proofs-cp-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const cp = await launchControlPlane({ db: join(dir, "cp.db"), workDir: dir, args });
    cleanup.push(() => cp.dispose());
    return { cp, dir };
  }

  it("SIGKILL then start again: same port, same database, the owner token still works; SIGTERM exits 0", async () => {
    const { cp } = await launched(["--scheduler-interval", "200ms"]);
    const url = cp.url;
    const firstPid = cp.pid;
    const owner = new CpClient({ baseUrl: cp.url, token: cp.ownerToken });
    const made = await owner.createToken({ role: "viewer", name: "kept-across-sigkill" });
    expect(await cp.stop("SIGKILL")).toEqual({ code: null, signal: "SIGKILL" });
    expect(cp.running).toBe(false);
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    await cp.start();
    expect(cp.url).toBe(url);
    expect(cp.pid).not.toBe(firstPid);
    const again = new CpClient({ baseUrl: cp.url, token: cp.ownerToken });
    expect((await again.listTokens()).tokens.map((t) => t.name)).toContain("kept-across-sigkill");
    expect(made.token).toMatch(/^aop_/);
    expect(await cp.stop("SIGTERM")).toEqual({ code: 0, signal: null });
  }, 60_000);

  it("the serve log masks every token secret (the bootstrap token is printed once on stderr)", async () => {
    const { cp } = await launched();
    await cp.stop("SIGTERM");
    const log = await readFile(cp.logFile, "utf8");
    const secret = cp.ownerToken.split("_").slice(2).join("_");
    expect(log).toContain(cp.ownerToken.split("_").slice(0, 2).join("_"));
    expect(log).not.toContain(secret);
    expect(maskTokens("token aop_abc123_s3cr3t-x end")).toBe("token aop_abc123_<masked> end");
  }, 60_000);

  it("a server that cannot start is PROOF_CP_START_FAILED quoting its last lines", async () => {
    const dir = await mkdtemp(join(tmpdir(), "proofs-cp-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const launch = launchControlPlane({ db: join(dir, "no", "such", "dir", "cp.db"), workDir: dir });
    const message = launch.then(() => "", (e: unknown) => String(e instanceof Error ? e.message : e));
    expect(await codeOf(launch)).toBe("PROOF_CP_START_FAILED/1");
    expect(await message).toMatch(/exited \(1\) before it was ready: .*error:/);
  }, 60_000);
});
