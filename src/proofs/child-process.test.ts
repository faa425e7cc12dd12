import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ProofChild } from "./child-process.js";
import type { ProofChildOptions } from "./child-process.js";

/** A child that logs a secret, writes `ready` when up, ends on SIGTERM with 0, and (with a stdin pipe) at stdin's end. */
const SCRIPT = `
const fs = require("node:fs");
process.stderr.write("token s3cret booting\\n");
process.on("SIGTERM", () => process.exit(0));
process.on("SIGHUP", () => fs.appendFileSync(process.argv[1] + ".hup", "x"));
setTimeout(() => fs.writeFileSync(process.argv[1], String(process.pid)), 100);
setInterval(() => undefined, 1000);
if (process.argv[2] === "stdin") { process.stdin.resume(); process.stdin.on("end", () => process.exit(7)); }
`;

describe("ProofChild", () => {
  let dir: string;
  const children: ProofChild[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "proof-child-"));
  });
  afterEach(async () => {
    for (const c of children.splice(0)) await c.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  function child(o: Partial<ProofChildOptions> = {}): ProofChild {
    const ready = join(dir, "ready");
    const c = new ProofChild({
      name: "test child", args: ["-e", SCRIPT, ready], logFile: join(dir, "child.log"),
      probe: () => Promise.resolve(existsSync(ready)), readyTimeoutMs: 10_000,
      errorCode: "PROOF_SETUP_FAILED", readyMeans: "it was ready", timeoutMeans: "get ready in time",
      redact: (t) => t.replace("s3cret", "<masked>"), ...o,
    });
    children.push(c);
    return c;
  }

  it("starts when the probe says ready, SIGTERM exits 0, starts again on the same arguments with a new pid; the log is 0600 and redacted", async () => {
    const c = child();
    await c.start();
    const first = c.pid;
    expect(c.running).toBe(true);
    await expect(c.start()).rejects.toMatchObject({ code: "PROOF_SETUP_FAILED", message: expect.stringContaining("already running") as unknown });
    c.signal("SIGHUP");
    await new Promise((r) => setTimeout(r, 200));
    expect(existsSync(join(dir, "ready.hup"))).toBe(true);
    expect(c.running).toBe(true);
    expect(await c.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    expect(c.running).toBe(false);
    await rm(join(dir, "ready"));
    await c.start();
    expect(c.pid).not.toBe(first);
    expect(await c.stop("SIGKILL")).toEqual({ code: null, signal: "SIGKILL" });
    await c.dispose();
    const log = await readFile(join(dir, "child.log"), "utf8");
    expect(log).toContain("token <masked> booting");
    expect(log).not.toContain("s3cret");
    expect((await stat(join(dir, "child.log"))).mode & 0o777).toBe(0o600);
  });

  it("a child that exits before it is ready is the caller's error quoting its last lines", async () => {
    const c = child({ args: ["-e", "process.stderr.write('error: no database\\n'); process.exit(3)"] });
    await expect(c.start()).rejects.toMatchObject({ code: "PROOF_SETUP_FAILED", message: "test child exited (3) before it was ready: error: no database" });
  });

  it("a child never ready within the timeout is SIGKILLed and reported", async () => {
    const c = child({ probe: () => Promise.reject(new Error("not listening")), readyTimeoutMs: 300 });
    await expect(c.start()).rejects.toMatchObject({ code: "PROOF_SETUP_FAILED", message: "test child did not get ready in time: token <masked> booting" });
    await new Promise((r) => setTimeout(r, 200));
    expect(c.running).toBe(false);
  });

  it("exitWithStdin holds a stdin pipe the child can wait on; without it stdin ends at once", async () => {
    const ready = join(dir, "ready");
    const c = child({ args: ["-e", SCRIPT, ready, "stdin"], exitWithStdin: true });
    await c.start();
    expect(c.running).toBe(true);
    const plain = child({ args: ["-e", SCRIPT, join(dir, "ready2"), "stdin"], probe: () => Promise.resolve(existsSync(join(dir, "ready2"))), logFile: join(dir, "plain.log") });
    // Without the pipe stdin is /dev/null: its end comes at once and the child ends (7) before it is ready.
    await expect(plain.start()).rejects.toMatchObject({ message: expect.stringContaining("exited (7) before it was ready") as unknown });
    expect(c.running).toBe(true);
  });
});
