import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { gunzipSync, gzipSync } from "node:zlib";
import { Header } from "tar";
import { ArchiveError, gzipDeterministic, readTarGz, tarArchive, tarGz } from "./index.js";
import { pinGzipHeader } from "./tar-write.js";
import type { ArchiveLimits, TarEntry } from "./index.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const LIMITS: ArchiveLimits = { maxCompressedBytes: 1 << 20, maxDecompressedBytes: 1 << 20, maxEntryBytes: 64 * 1024, maxEntries: 16, maxExtendedHeaderBytes: 4096 };

const ENTRIES: TarEntry[] = [
  { type: "directory", name: "agent" },
  { name: "agent/agent.py", content: Buffer.from("print('hi')\n"), mode: 0o755 },
  { name: "agent/config.json", content: Buffer.from("{}\n") },
  { name: `agent/${"n".repeat(120)}.txt`, content: Buffer.from("long name\n") },
];

let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "archive-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(ArchiveError);
  return (e as ArchiveError).code;
}

/** A raw ustar header + data, for hostile archives the writer refuses to make. */
function rawEntry(path: string, opts: { type?: "File" | "SymbolicLink" | "Link" | "Directory"; data?: string; linkpath?: string } = {}): Buffer {
  const data = Buffer.from(opts.data ?? "");
  const block = Buffer.alloc(512);
  new Header({ path, type: opts.type ?? "File", size: data.length, mode: 0o644, uid: 0, gid: 0, mtime: new Date(0), uname: "", gname: "", linkpath: opts.linkpath ?? "" }).encode(block);
  return Buffer.concat([block, data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
}
const rawTarGz = (...entries: Buffer[]): Buffer => gzipSync(Buffer.concat([...entries, Buffer.alloc(1024)]));

describe("deterministic writing", () => {
  it("gives the same bytes on every run, with the gzip header pinned (MTIME 0, XFL 2, OS 3)", () => {
    const a = tarGz(ENTRIES);
    const b = tarGz(ENTRIES);
    expect(a.gz.equals(b.gz)).toBe(true);
    expect(a.tar.equals(b.tar)).toBe(true);
    expect([...a.gz.subarray(0, 10)]).toEqual([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
  });

  it("pins the header gzip would otherwise take from the host (a macOS zlib writes OS 19) or the clock", () => {
    const foreign = gzipSync(Buffer.from("x"), { level: 9 });
    foreign.writeUInt32LE(1_700_000_000, 4);
    foreign[8] = 0;
    foreign[9] = 19;
    const pinned = pinGzipHeader(Buffer.from(foreign));
    expect([...pinned.subarray(4, 10)]).toEqual([0, 0, 0, 0, 2, 3]);
    expect(pinned.equals(gzipDeterministic(Buffer.from("x")))).toBe(true);
    expect(gunzipSync(pinned).toString()).toBe("x");
  });

  it("GNU tar lists it: owner 0/0, mtime 0, modes 755/644, the directory, the long pax name", async () => {
    const path = join(dir, "layer.tar.gz");
    await writeFile(path, tarGz(ENTRIES).gz);
    const { stdout } = await run("tar", ["--numeric-owner", "-tvzf", path], { env: { ...process.env, TZ: "UTC" } });
    const lines = stdout.trim().split("\n").map((l) => l.replace(/ +/g, " "));
    expect(lines).toEqual([
      "drwxr-xr-x 0/0 0 1970-01-01 00:00 agent/",
      "-rwxr-xr-x 0/0 12 1970-01-01 00:00 agent/agent.py",
      "-rw-r--r-- 0/0 3 1970-01-01 00:00 agent/config.json",
      `-rw-r--r-- 0/0 10 1970-01-01 00:00 agent/${"n".repeat(120)}.txt`,
    ]);
  });

  it("refuses an entry it cannot write safely", () => {
    expect(() => tarArchive([{ name: "../x", content: Buffer.alloc(0) }])).toThrow(ArchiveError);
    expect(() => tarArchive([{ name: "/etc/x", content: Buffer.alloc(0) }])).toThrow(ArchiveError);
    expect(() => tarArchive([{ name: "x", content: Buffer.alloc(0), mode: 0o600 as 0o644 }])).toThrow(/only 644 and 755/);
  });

  it("is byte-identical across time zones and umasks, for OCI image layers and policy bundles alike", async () => {
    // Each child writes its own source files (so their modes follow its umask), builds an image and a bundle, and prints digests.
    const script = `
      import { mkdtemp, writeFile, chmod } from "node:fs/promises";
      import { tmpdir } from "node:os";
      import { join } from "node:path";
      import { LayoutRepository, buildImage } from "./src/oci/index.ts";
      import { buildBundle } from "./src/policy/index.ts";
      const d = await mkdtemp(join(tmpdir(), "archive-child-"));
      await writeFile(join(d, "agent.py"), "print('hi')\\n");
      await chmod(join(d, "agent.py"), 0o777 & ~process.umask());
      await writeFile(join(d, "README"), "readme\\n");
      const repo = new LayoutRepository(join(d, "layout"));
      const img = await buildImage(repo, [join(d, "README"), join(d, "agent.py")], { tag: "v1" });
      const manifest = JSON.parse(Buffer.from(await repo.getBlob(img.digest)).toString("utf8"));
      const bundle = await buildBundle(join(process.cwd(), "examples", "policies"), { name: "demo", version: "1.0.0", env: {} , createdAt: new Date(0) });
      process.stdout.write(JSON.stringify({ layer: manifest.layers[0].digest, image: img.digest, bundle: bundle.digest }));
    `;
    const child = async (tz: string, umask: string): Promise<Record<string, string>> => {
      const { stdout } = await run("sh", ["-c", `umask ${umask} && exec "${process.execPath}" --import tsx --input-type=module -e "$SCRIPT"`], { cwd: ROOT, env: { ...process.env, TZ: tz, SCRIPT: script } });
      return JSON.parse(stdout) as Record<string, string>;
    };
    const a = await child("UTC", "022");
    const b = await child("Pacific/Kiritimati", "077");
    const c = await child("America/St_Johns", "002");
    expect(a.layer).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });
});

describe("hostile reading", () => {
  const read = (bytes: Buffer, flat = false): Promise<unknown> => readTarGz(bytes, { limits: LIMITS, flat });

  it("reads back what it wrote (regular files, nested names when not flat)", async () => {
    const { gz } = tarGz([{ name: "a/b.txt", content: Buffer.from("b") }, { name: "c.txt", content: Buffer.from("c") }]);
    const files = await readTarGz(gz, { limits: LIMITS });
    expect(files.map((f) => [f.name, f.data.toString()])).toEqual([["a/b.txt", "b"], ["c.txt", "c"]]);
    expect(await codeOf(readTarGz(gz, { limits: LIMITS, flat: true }))).toBe("ARCHIVE_PATH_UNSAFE");
  });

  it.each([
    ["path traversal", rawTarGz(rawEntry("a/../../etc/passwd", { data: "x" })), "ARCHIVE_PATH_UNSAFE"],
    ["an absolute path", rawTarGz(rawEntry("/etc/passwd", { data: "x" })), "ARCHIVE_PATH_UNSAFE"],
    ["a symbolic link", rawTarGz(rawEntry("l", { type: "SymbolicLink", linkpath: "/etc/shadow" })), "ARCHIVE_LINK_FORBIDDEN"],
    ["a hard link", rawTarGz(rawEntry("h", { type: "Link", linkpath: "x" })), "ARCHIVE_LINK_FORBIDDEN"],
    ["a directory", rawTarGz(rawEntry("d/", { type: "Directory" })), "ARCHIVE_ENTRY_TYPE_FORBIDDEN"],
    ["a duplicate", rawTarGz(rawEntry("x", { data: "1" }), rawEntry("x", { data: "2" })), "ARCHIVE_DUPLICATE_ENTRY"],
    ["a case-only duplicate", rawTarGz(rawEntry("X", { data: "1" }), rawEntry("x", { data: "2" })), "ARCHIVE_DUPLICATE_ENTRY"],
    ["a compression bomb", gzipSync(Buffer.alloc(8 << 20)), "ARCHIVE_TOO_LARGE"],
    ["gzip inside gzip", gzipSync(gzipSync(Buffer.alloc(2048))), "ARCHIVE_TAR_INVALID"],
    ["not gzip", Buffer.alloc(100, 7), "ARCHIVE_NOT_GZIP"],
    ["a truncated tar", gzipSync(rawEntry("x", { data: "1" })), "ARCHIVE_TAR_INVALID"],
  ])("refuses %s", async (_what, bytes, code) => {
    expect(await codeOf(read(bytes))).toBe(code);
  });

  it("names what it reads in its messages", async () => {
    const e = await readTarGz(Buffer.alloc(100, 7), { limits: LIMITS, what: "layer" }).catch((x: unknown) => x);
    expect((e as Error).message).toBe("the layer is not gzip data (no gzip header with deflate compression)");
  });
});
