/**
 * Attack 8 (shell), through the tool server: the command's process group is
 * killed when the call ends, also when the HTTP caller goes away mid-call.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToolServer } from "../../src/runtime/http-server.js";
import { shellTool, toolRegistry } from "../../src/runtime/tools/index.js";
import { interceptorFor, listen, policyOf, testAuth } from "../helpers/tool-server.js";
import type { TestAuth } from "../helpers/tool-server.js";

const PERMIT_SHELL = [{ name: "shell.cedar", text: '@id("shell_allow")\npermit (principal, action == Action::"tool:tool.shell", resource);' }];

let dir: string;
let auth: TestAuth;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "aops-shell-abort-"));
  auth = await testAuth(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** True while `pid` runs (a zombie runs nothing). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  for (let waited = 0; waited < ms && !cond(); waited += 50) await new Promise((r) => setTimeout(r, 50));
  return cond();
}

describe("tool.shell through the tool server", () => {
  it("attack 8: a background child of a call whose HTTP caller disconnects is killed with its process group", async () => {
    const policy = policyOf(PERMIT_SHELL);
    const app = createToolServer({ interceptor: interceptorFor(() => policy), tools: toolRegistry([shellTool({ cwd: dir, timeoutMs: 60_000 })]), policy: () => policy, auth: auth.auth });
    const base = await listen(app);
    try {
      const pidFile = join(dir, "bg.pid");
      const ac = new AbortController();
      const call = fetch(`${base}/v1/tool`, {
        method: "POST",
        headers: { "content-type": "application/json", ...auth.headers() },
        body: JSON.stringify({ kind: "tool.shell", params: { command: "sleep 60 >/dev/null 2>&1 & echo $! > bg.pid; sleep 60" } }),
        signal: ac.signal,
      });
      expect(await until(() => existsSync(pidFile) && readFileSync(pidFile, "utf8").endsWith("\n"), 5000)).toBe(true);
      const pid = Number(readFileSync(pidFile, "utf8").trim());
      expect(running(pid)).toBe(true);
      ac.abort();
      await call.catch(() => undefined);
      expect(await until(() => !running(pid), 3000), `background child ${pid} outlived the cancelled call`).toBe(true);
    } finally {
      await app.close();
      policy.engine.dispose();
    }
  });
});
