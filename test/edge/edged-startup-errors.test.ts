// Ordinary start-up failures of `edged run` (a port in use, a control socket edged cannot create) are typed
// errors naming the flag or key and what to do, never "unexpected failure … this is a bug" (newcomer review).
import { createServer } from "node:net";
import type { Server } from "node:net";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import type { RunResult } from "../helpers/cli.js";
import { edgedNodes, edgedToml } from "../helpers/edged-loopback.js";
import type { EdgedNode } from "../helpers/edged-loopback.js";

const EDGED = join(REPO_ROOT, "bin", "edged.js");

function occupy(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve(s));
  });
}

function expectTyped(r: RunResult, code: string, names: RegExp): void {
  expect(r.stderr).not.toMatch(/unexpected failure|this is a bug/);
  expect(r.code).toBe(1);
  const doc = JSON.parse(r.stdout) as { code: string; message: string; hint: string };
  expect(doc.code).toBe(code);
  expect(`${doc.message} ${doc.hint}`).toMatch(names);
}

describe("edged run: ordinary start-up failures are typed errors", () => {
  let dir: string;
  let a: EdgedNode;
  let servers: Server[] = [];
  const run = (...extra: string[]): Promise<RunResult> =>
    runProcess(process.execPath, [EDGED, "run", "--json", "--config", a.cfg, ...extra], { env: { AUTONOMY_DEBUG: undefined }, timeoutMs: 20_000 });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edged-startup-"));
    const { certs, nodes } = await edgedNodes(dir, ["edge-a", "edge-b"]);
    a = nodes[0]!;
    await writeFile(a.cfg, edgedToml(a, nodes[1]!, certs, { successCondition: "one_peer", maxRetry: 1 }));
  });
  afterEach(async () => {
    for (const s of servers) s.close();
    servers = [];
    await rm(dir, { recursive: true, force: true });
  });

  it("a missing state root (a typo in [node] state_root) is refused, not created as an empty node", async () => {
    await rm(a.root, { recursive: true });
    const r = await run("--control-socket", a.sock);
    expectTyped(r, "STATE_ROOT_INVALID", /state_root .* does not exist[\s\S]*edged precheck/);
    await expect(stat(a.root)).rejects.toThrow(/ENOENT/);
  }, 30_000);

  it("relay listen port in use is LISTEN_ADDRESS_IN_USE naming [transport] listen", async () => {
    servers.push(await occupy(a.port));
    expectTyped(await run("--control-socket", a.sock), "LISTEN_ADDRESS_IN_USE", /\[transport\] listen/);
  }, 30_000);

  it("--prometheus-addr port busy is LISTEN_ADDRESS_IN_USE naming --prometheus-addr", async () => {
    const s = await occupy(0);
    servers.push(s);
    const port = (s.address() as { port: number }).port;
    expectTyped(await run("--control-socket", a.sock, "--prometheus-addr", `127.0.0.1:${port}`), "LISTEN_ADDRESS_IN_USE", /--prometheus-addr/);
  }, 30_000);

  it("a control socket whose parent is a file is CONTROL_SOCKET_PATH_INVALID naming --control-socket", async () => {
    const file = join(dir, "plain-file");
    await writeFile(file, "x");
    expectTyped(await run("--control-socket", join(file, "ctl.sock")), "CONTROL_SOCKET_PATH_INVALID", /--control-socket PATH/);
  }, 30_000);

  it("a control socket path over the unix socket limit is CONTROL_SOCKET_PATH_INVALID", async () => {
    const long = join(dir, "d".repeat(60), "e".repeat(60), "ctl.sock");
    expectTyped(await run("--control-socket", long), "CONTROL_SOCKET_PATH_INVALID", /bytes/);
  }, 30_000);

  it("a control socket directory edged may not create (non-root default /run/edged) is CONTROL_SOCKET_PATH_INVALID", async () => {
    // root can create anywhere: a read-only parent stands for EACCES; /proc refuses mkdir for everyone
    expectTyped(await run("--control-socket", "/proc/nope/a.sock"), "CONTROL_SOCKET_PATH_INVALID", /directory you own/);
  }, 30_000);
});
