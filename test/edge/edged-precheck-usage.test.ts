// `edged precheck`'s exit codes are read by systemd and scripts (2 = state root invalid): its usage errors
// exit 64 (EX_USAGE), and a version-0 config gets the `autonomy config migrate` hint `edged run` prints.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import type { RunResult } from "../helpers/cli.js";

const edged = (args: string[]): Promise<RunResult> =>
  runProcess(process.execPath, [join(REPO_ROOT, "bin", "edged.js"), ...args], { env: { AUTONOMY_DEBUG: undefined }, timeoutMs: 30_000 });

describe("edged precheck: usage errors and the version-0 hint", () => {
  let dir: string;
  let v0: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "precheck-usage-"));
    v0 = join(dir, "edge.toml");
    await writeFile(v0, `[node]\nid = "edge-a"\nstate_root = "${join(dir, "state")}"\n`);
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("precheck without --config exits 64 (usage), not 2 (state root invalid)", async () => {
    const r = await edged(["precheck"]);
    expect(r.code, r.stderr).toBe(64);
    expect(r.stderr).toContain("--config");
    const j = await edged(["precheck", "--json"]);
    expect(j.code).toBe(64);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, code: "USAGE" });
  }, 60_000);

  it("precheck with an unknown flag exits 64; other commands keep 2 for usage", async () => {
    expect((await edged(["precheck", "--config", v0, "--bogus"])).code).toBe(64);
    expect((await edged(["run", "--bogus"])).code).toBe(2);
  }, 60_000);

  it("precheck on a version-0 config prints the `autonomy config migrate` hint, in text and JSON, with exit_code", async () => {
    const text = await edged(["precheck", "--config", v0]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain("autonomy config migrate --config edge.toml --write");
    const json = await edged(["precheck", "--config", v0, "--json"]);
    expect(json.code).toBe(1);
    const doc = JSON.parse(json.stdout) as { exit_code: number; checks: { name: string; code?: string; hint?: string }[] };
    expect(doc.exit_code).toBe(1);
    expect(doc.checks[0]).toMatchObject({ name: "config", code: "EDGE_CONFIG_VERSION" });
    expect(doc.checks[0]?.hint).toContain("autonomy config migrate");
  }, 60_000);
});
