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

describe("installRuntimeDir", () => {
  const file = (path: string, text: string, mode = 0o644) => ({ path, bytes: Buffer.from(text), mode });

  it("installs inside the install dir only: a tree, a `current` symlink, top-level links; a reinstall replaces names and the earlier layout", async () => {
    const { installRuntimeDir, INSTALL_INTERNAL } = await import("./install-dir.js");
    const { lstat, readFile: rf, mkdir: mk } = await import("node:fs/promises");
    const dir = await mkdtemp(join(tmpdir(), "instdir-"));
    const target = join(dir, "opt");
    // An install of the earlier layout (plain files and directories) is replaced.
    await mk(join(target, "lib"), { recursive: true });
    await writeFile(join(target, "lib", "stale"), "old");
    await writeFile(join(target, "gone"), "old");
    await installRuntimeDir(target, [file("bin", "v1", 0o755), file("lib/a", "a1")], { outside: join(dir, "state") });
    expect((await readdir(target)).sort()).toEqual([INSTALL_INTERNAL, "bin", "lib"].sort());
    expect((await lstat(join(target, "bin"))).isSymbolicLink()).toBe(true);
    expect(await rf(join(target, "bin"), "utf8")).toBe("v1");
    expect(await readdir(join(target, "lib"))).toEqual(["a"]);
    await installRuntimeDir(target, [file("bin", "v2", 0o755), file("share/x", "x")], { outside: join(dir, "state") });
    expect((await readdir(target)).sort()).toEqual([INSTALL_INTERNAL, "bin", "share"].sort());
    expect(await rf(join(target, "bin"), "utf8")).toBe("v2");
    expect(await rf(join(target, "share", "x"), "utf8")).toBe("x");
    // One tree and the `current` link: the old tree and the moved-aside directory are gone.
    expect((await readdir(join(target, INSTALL_INTERNAL))).length).toBe(2);
  });
});

describe("installTree after a kill between its two renames", () => {
  it("puts the complete old tree back instead of deleting it, then installs", async () => {
    const { rename: mv, readFile: rf } = await import("node:fs/promises");
    const dir = await mkdtemp(join(tmpdir(), "tree-"));
    const target = join(dir, "runtime");
    await installTree(target, [{ path: "a", bytes: Buffer.from("old"), mode: 0o644 }]);
    await mv(target, join(dir, ".runtime.old-0123456789ab"));
    const { recoverInterruptedSwap } = await import("./tree.js");
    expect(await recoverInterruptedSwap(target)).toBe(true);
    expect(await rf(join(target, "a"), "utf8")).toBe("old");
    expect(await readdir(dir)).toEqual(["runtime"]);
    expect(await recoverInterruptedSwap(target)).toBe(false);
  });
});
