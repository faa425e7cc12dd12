import { mkdir, mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { installTree } from "./tree.js";

describe("installTree", () => {
  it("refuses a target that is, is inside, or contains the directory it must stay outside of, before writing anything", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tree-"));
    const root = join(dir, "state");
    await mkdir(root);
    await writeFile(join(root, "state.json"), "{}");
    for (const target of [root, join(root, "runtime"), dir]) {
      await expect(installTree(target, [{ path: "x", bytes: Buffer.from("x"), mode: 0o644 }], { outside: root }), target).rejects.toMatchObject({ code: "RECONSTRUCTION_FAILED" });
    }
    expect((await readdir(root)).sort()).toEqual(["state.json"]);
    expect((await readdir(dir)).sort()).toEqual(["state"]);
  });
});
