// `edgectl relay send` on a missing file: the hint reads "the segment to send", not "the the segment to send".
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";

describe("edgectl relay send: the unreadable-file hint", () => {
  it("says 'the segment to send' once (no 'the the')", async () => {
    const r = await runProcess(process.execPath, [join(REPO_ROOT, "bin", "edgectl.js"), "relay", "send", "/nonexistent/payload.bin", "--socket", "/nonexistent/ctl.sock"], { env: { AUTONOMY_DEBUG: undefined } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("the segment to send");
    expect(r.stderr).not.toMatch(/the the/);
  }, 30_000);
});

describe("subcommand --help shows the program-wide options", () => {
  const bin = (name: string): string => join(REPO_ROOT, "bin", `${name}.js`);
  it("edged run --help and edged precheck --help show --config; edgectl relay status --help shows --socket", async () => {
    for (const sub of ["run", "precheck"]) {
      const r = await runProcess(process.execPath, [bin("edged"), sub, "--help"]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain("--config <edge.toml>");
    }
    const ctl = await runProcess(process.execPath, [bin("edgectl"), "relay", "status", "--help"]);
    expect(ctl.stdout).toContain("--socket <path>");
  }, 30_000);
});
