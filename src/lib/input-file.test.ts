import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UsageError } from "./errors.js";
import { readInput, readInputFile } from "./input-file.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "input-file-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function usageError(p: Promise<unknown>): Promise<UsageError> {
  const e = await p.then(() => undefined, (err: unknown) => err);
  expect(e).toBeInstanceOf(UsageError);
  return e as UsageError;
}

describe("#readInput", () => {
  it("returns the bytes and the mode of one file", async () => {
    const path = join(dir, "run.sh");
    await writeFile(path, "#!/bin/sh\n");
    await chmod(path, 0o750);
    const r = await readInput(path, "file to push");
    expect(r.content.toString()).toBe("#!/bin/sh\n");
    expect(r.mode & 0o777).toBe(0o750);
    expect((await readInputFile(path, "file to push")).toString()).toBe("#!/bin/sh\n");
  });

  it("a missing file is a usage error (exit 2) naming the file and what it was for", async () => {
    const e = await usageError(readInput(join(dir, "missing.py"), "file to push"));
    expect(e.exitCode).toBe(2);
    expect(e.code).toBe("USAGE");
    expect(e.message).toBe(`cannot read file to push "${join(dir, "missing.py")}": ENOENT: no such file`);
    expect(e.hint).toContain("file to push");
  });

  it("a directory, or a path through a file, is a usage error naming it", async () => {
    await mkdir(join(dir, "sub"));
    expect((await usageError(readInputFile(join(dir, "sub"), "lock"))).message).toMatch(/^cannot read lock ".*sub": it is a directory$/);
    await writeFile(join(dir, "plain"), "x");
    expect((await usageError(readInputFile(join(dir, "plain", "x"), "lock"))).message).toContain("ENOTDIR");
  });

  it("quotes a hostile path instead of printing its control characters", async () => {
    const e = await usageError(readInputFile(join(dir, "a\u001b[2Jb"), "lock"));
    expect(e.message).not.toContain("\u001b");
    expect(e.message).toContain("\\u001b");
  });
});
