import { mkdtemp, readFile, readdir, rename, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { replaceFileDurably, writeFileSynced } from "./atomic-file.js";
import type { ReplaceFs } from "./atomic-file.js";

describe("replaceFileDurably", () => {
  it("writes and fsyncs the fixed temp, renames it over the target, then fsyncs the target's directory — in that order", async () => {
    const dir = await mkdtemp(join(tmpdir(), "replace-"));
    const ops: string[] = [];
    const fs: ReplaceFs = {
      writeFileSynced: async (p, d) => {
        ops.push(`write+fsync ${p}`);
        await writeFileSynced(p, d);
      },
      rename: async (a, b) => {
        ops.push(`rename ${a} -> ${b}`);
        await rename(a, b);
      },
      fsyncDir: (d) => Promise.resolve(void ops.push(`fsync dir ${d}`)),
    };
    await replaceFileDurably(join(dir, "x"), join(dir, "x.tmp"), Buffer.from("new"), fs);
    expect(ops).toEqual([`write+fsync ${join(dir, "x.tmp")}`, `rename ${join(dir, "x.tmp")} -> ${join(dir, "x")}`, `fsync dir ${dir}`]);
    expect(await readFile(join(dir, "x"), "utf8")).toBe("new");
    expect(await readdir(dir)).toEqual(["x"]);
  });

  it("on the real file system replaces existing content, reuses a stale temp of the same name and keeps the mode asked for", async () => {
    const dir = await mkdtemp(join(tmpdir(), "replace-"));
    await writeFileSynced(join(dir, "x"), Buffer.from("old"));
    await writeFileSynced(join(dir, "x.tmp"), Buffer.from("stale temp from a crash"));
    await replaceFileDurably(join(dir, "x"), join(dir, "x.tmp"), Buffer.from("new"));
    expect(await readFile(join(dir, "x"), "utf8")).toBe("new");
    expect((await readdir(dir)).sort()).toEqual(["x"]);
    await writeFileSynced(join(dir, "y"), Buffer.from("y"), 0o600);
    expect((await stat(join(dir, "y"))).mode & 0o777).toBe(0o600);
  });
});
