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
