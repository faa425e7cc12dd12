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

  it("refuses a target reached through a symlink to a directory holding the state root (real paths, not strings), and the install dir's own install too", async () => {
    const { symlink } = await import("node:fs/promises");
    const { installRuntimeDir } = await import("./install-dir.js");
    const dir = await mkdtemp(join(tmpdir(), "tree-"));
    const root = join(dir, "data", "state");
    await mkdir(root, { recursive: true });
    await writeFile(join(root, "state.json"), "{}");
    const link = join(dir, "opt-autonomy");
    await symlink(join(dir, "data"), link);
    await expect(installTree(join(link, "new"), [{ path: "x", bytes: Buffer.from("x"), mode: 0o644 }], { outside: root })).resolves.toBeUndefined();
    for (const target of [link, join(link, "state", "rt")]) {
      await expect(installRuntimeDir(target, [{ path: "x", bytes: Buffer.from("x"), mode: 0o644 }], { outside: root }), target).rejects.toThrow(/through a symbolic link/);
    }
    expect((await readdir(root)).sort()).toEqual(["state.json"]);
  });
});

describe("installRuntimeDir", () => {
  const file = (path: string, text: string, mode = 0o644) => ({ path, bytes: Buffer.from(text), mode });

  it("installs inside the install dir only: a tree, a `current` symlink, top-level links; a reinstall replaces its own names and leaves files it did not install", async () => {
    const { installRuntimeDir, INSTALL_INTERNAL } = await import("./install-dir.js");
    const { lstat, readFile: rf } = await import("node:fs/promises");
    const dir = await mkdtemp(join(tmpdir(), "instdir-"));
    const target = join(dir, "opt");
    await installRuntimeDir(target, [file("bin", "v1", 0o755), file("lib/a", "a1")], { outside: join(dir, "state") });
    expect((await readdir(target)).sort()).toEqual([INSTALL_INTERNAL, "bin", "lib"].sort());
    expect((await lstat(join(target, "bin"))).isSymbolicLink()).toBe(true);
    expect(await rf(join(target, "bin"), "utf8")).toBe("v1");
    expect(await readdir(join(target, "lib"))).toEqual(["a"]);
    // Someone else's file beside the runtime: never ours to delete.
    await writeFile(join(target, "notes.txt"), "operator's");
    await installRuntimeDir(target, [file("bin", "v2", 0o755), file("share/x", "x")], { outside: join(dir, "state") });
    expect((await readdir(target)).sort()).toEqual([INSTALL_INTERNAL, "bin", "notes.txt", "share"].sort());
    expect(await rf(join(target, "bin"), "utf8")).toBe("v2");
    expect(await rf(join(target, "share", "x"), "utf8")).toBe("x");
    // One tree and the `current` link: the old tree is gone.
    expect((await readdir(join(target, INSTALL_INTERNAL))).length).toBe(2);
  });

  it("refuses a non-empty directory it did not mark, and a foreign file where the runtime ships a name, deleting nothing", async () => {
    const { installRuntimeDir } = await import("./install-dir.js");
    const { mkdir: mk } = await import("node:fs/promises");
    const dir = await mkdtemp(join(tmpdir(), "instdir-"));
    const target = join(dir, "opt");
    await mk(join(target, "lib"), { recursive: true });
    await writeFile(join(target, "lib", "stale"), "old");
    await expect(installRuntimeDir(target, [file("bin", "v1", 0o755)], { outside: join(dir, "state") })).rejects.toThrow(/not the runtime's \(lib\)/);
    expect(await readdir(target)).toEqual(["lib"]);
    const ours = join(dir, "ours");
    await installRuntimeDir(ours, [file("bin", "v1", 0o755)], { outside: join(dir, "state") });
    await writeFile(join(ours, "lib"), "foreign");
    await expect(installRuntimeDir(ours, [file("bin", "v2", 0o755), file("lib/a", "a")], { outside: join(dir, "state") })).rejects.toThrow(/was not installed by edged/);
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
