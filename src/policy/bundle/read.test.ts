import { once } from "node:events";
import { spawnSync } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGzip } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { ExitCodes, sha256Digest } from "../../lib/index.js";
import { END, gzip, paxEntry, paxRecord, tarEntry, tarOf, tgz, ustarHeader } from "../../../test/helpers/raw-tar.js";
import { buildBundle } from "./index.js";
import { DEFAULT_BUNDLE_LIMITS, bundleHash, openBundle, readBundle, serializeManifest } from "./index.js";
import type { BundleLimits, ReadBundleOptions } from "./index.js";
import { PolicyError } from "../errors.js";
import type { PolicyErrorCode } from "../errors.js";
import type { BundleManifest } from "../types.js";
import { EXAMPLE_POLICY_DIR } from "../../../test/helpers/policies.js";
import { needs } from "../../../test/helpers/needs.js";

const EXAMPLES = EXAMPLE_POLICY_DIR;

interface F {
  name: string;
  content: Buffer | string;
}

const A: F = { name: "a.cedar", content: 'permit (principal, action == Action::"tool:tool.echo", resource);\n' };
const B: F = { name: "b.cedar", content: 'forbid (principal, action == Action::"tool:tool.shell", resource);\n' };

function manifestFor(files: readonly F[], over: Partial<BundleManifest> = {}): BundleManifest {
  return {
    name: "demo",
    policy_bundle_version: "1.0.0",
    required_runtime_version: "",
    bundle_hash: bundleHash(files),
    created_at: "2024-01-31T12:00:00Z",
    engine: "cedar",
    files: Object.fromEntries(files.map((f) => [f.name, sha256Digest(f.content)])),
    ...over,
  };
}

const manifestEntry = (m: BundleManifest | string): Buffer => tarEntry({ name: "manifest.json", data: typeof m === "string" ? m : serializeManifest(m) });
const fileEntries = (files: readonly F[]): Buffer[] => files.map((f) => tarEntry({ name: f.name, data: f.content }));

/** A well-formed bundle of `files` with a correct manifest, plus `extra` entries appended. */
function bundleOf(files: readonly F[], extra: readonly Buffer[] = [], over: Partial<BundleManifest> = {}): Buffer {
  return tgz([manifestEntry(manifestFor(files, over)), ...fileEntries(files), ...extra]);
}

async function expectCode(bytes: Uint8Array, code: PolicyErrorCode, opts?: ReadBundleOptions): Promise<PolicyError> {
  const e = await readBundle(bytes, opts).then(
    () => new Error("expected a rejection"),
    (err: unknown) => err,
  );
  expect(e, String(e)).toBeInstanceOf(PolicyError);
  expect((e as PolicyError).code, (e as PolicyError).message).toBe(code);
  return e as PolicyError;
}

/** gzip of a file header claiming `total` bytes followed by that many zeros, streamed so the test never holds them. */
async function gzipBomb(total: number): Promise<Buffer> {
  const gz = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gz.on("data", (c: Buffer) => chunks.push(c));
  gz.write(ustarHeader({ name: "bomb.cedar", size: total }));
  const zero = Buffer.alloc(1024 * 1024);
  for (let done = 0; done < total; done += zero.length) {
    if (!gz.write(zero)) await once(gz, "drain");
  }
  gz.end();
  await once(gz, "end");
  return Buffer.concat(chunks);
}

describe("#readBundle", () => {
  describe("when the bundle is well-formed", () => {
    it("round-trips examples/policies: names, text, manifest digests and the bundle digest", async () => {
      const built = await buildBundle(EXAMPLES, { name: "demo", version: "1.0.0", createdAt: new Date(0) });
      const bundle = await readBundle(built.bytes);
      const names = (await readdir(EXAMPLES)).filter((n) => n.endsWith(".cedar")).sort();
      expect(bundle.files.map((f) => f.name)).toEqual(names);
      for (const f of bundle.files) {
        const disk = await readFile(join(EXAMPLES, f.name));
        expect(f.text).toBe(disk.toString("utf8"));
        expect(bundle.manifest.files[f.name]).toBe(sha256Digest(disk));
      }
      expect(bundle.manifest).toEqual(built.manifest);
      expect(bundle.digest).toBe(sha256Digest(built.bytes));
      expect(bundle.digest).toBe(built.digest);
      expect(bundle.size).toBe(built.bytes.length);
    });

    it("reads a hand-made bundle and returns the files sorted by name", async () => {
      const bytes = tgz([...fileEntries([B, A]), manifestEntry(manifestFor([A, B]))]);
      const bundle = await readBundle(bytes);
      expect(bundle.files).toEqual([
        { name: "a.cedar", text: A.content },
        { name: "b.cedar", text: B.content },
      ]);
    });

    it("accepts a Uint8Array view into a larger buffer", async () => {
      const bytes = bundleOf([A]);
      const big = new Uint8Array(bytes.length + 20);
      big.set(bytes, 10);
      expect((await readBundle(big.subarray(10, 10 + bytes.length))).digest).toBe(sha256Digest(bytes));
    });

    it("tolerates pax extended and global headers that do not change names, sizes or types", async () => {
      const bytes = tgz([paxEntry({ comment: "built by hand" }, true), paxEntry({ mtime: "0", path: "a.cedar" }), ...fileEntries([A]), manifestEntry(manifestFor([A]))]);
      expect((await readBundle(bytes)).files.map((f) => f.name)).toEqual(["a.cedar"]);
    });

    it("uses a pax path for a long name", async () => {
      const long: F = { name: `${"x".repeat(120)}.cedar`, content: "permit (principal, action, resource);" };
      const bytes = tgz([manifestEntry(manifestFor([long])), paxEntry({ path: long.name }), tarEntry({ name: "x".repeat(99), data: long.content })]);
      expect((await readBundle(bytes)).files[0]!.name).toBe(long.name);
    });

    it("uses a GNU long name (type L) for a long name", async () => {
      const long: F = { name: `${"y".repeat(120)}.cedar`, content: "permit (principal, action, resource);" };
      const bytes = tgz([manifestEntry(manifestFor([long])), tarEntry({ name: "././@LongLink", type: "L", data: `${long.name}\0` }), tarEntry({ name: "y".repeat(99), data: long.content })]);
      expect((await readBundle(bytes)).files[0]!.name).toBe(long.name);
    });

    needs("gnu-tar").it("reads a bundle packed by GNU tar (a writer we did not write)", async () => {
      const dir = await mkdtemp(join(tmpdir(), "gnu-tar-"));
      try {
        await writeFile(join(dir, "manifest.json"), serializeManifest(manifestFor([A, B])));
        for (const f of [A, B]) await writeFile(join(dir, f.name), f.content);
        const r = spawnSync("tar", ["--format=ustar", "--owner=0", "--group=0", "--numeric-owner", "-cf", "-", "manifest.json", "a.cedar", "b.cedar"], { cwd: dir });
        expect(r.status, r.stderr.toString()).toBe(0);
        expect((await readBundle(gzip(r.stdout))).files.map((f) => f.name)).toEqual(["a.cedar", "b.cedar"]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });

  describe("when the container is wrong", () => {
    it("throws BUNDLE_TOO_LARGE for more than 16 MiB compressed, before looking inside", async () => {
      const bytes = Buffer.alloc(DEFAULT_BUNDLE_LIMITS.maxCompressedBytes + 1);
      bytes.set([0x1f, 0x8b, 0x08]);
      await expectCode(bytes, "BUNDLE_TOO_LARGE");
    });

    it("throws BUNDLE_NOT_GZIP for a plain tar", async () => {
      await expectCode(tarOf([manifestEntry(manifestFor([A])), ...fileEntries([A])]), "BUNDLE_NOT_GZIP");
    });

    it("throws BUNDLE_NOT_GZIP for text and for empty input", async () => {
      await expectCode(Buffer.from("hello, this is not a bundle at all"), "BUNDLE_NOT_GZIP");
      await expectCode(new Uint8Array(0), "BUNDLE_NOT_GZIP");
    });

    it("throws BUNDLE_TAR_INVALID for a truncated gzip stream", async () => {
      const bytes = bundleOf([A]);
      await expectCode(bytes.subarray(0, bytes.length - 10), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for a gzip stream with a bad CRC", async () => {
      const bytes = Buffer.from(bundleOf([A]));
      bytes[bytes.length - 8]! ^= 0xff;
      await expectCode(bytes, "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for bytes after the gzip stream", async () => {
      await expectCode(Buffer.concat([bundleOf([A]), Buffer.alloc(16)]), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for gzip inside gzip (the tar package would inflate it again, past our cap)", async () => {
      await expectCode(gzip(bundleOf([A])), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TOO_LARGE for a gzip bomb (200 MiB of zeros) without inflating it", async () => {
      const bomb = await gzipBomb(200 * 1024 * 1024);
      expect(bomb.length).toBeLessThan(1024 * 1024);
      const before = process.resourceUsage().maxRSS;
      const e = await expectCode(bomb, "BUNDLE_TOO_LARGE");
      expect(e.message).toMatch(/expands to more than/);
      // Loose: the cap is 64 MiB; inflating the bomb would need 200 MiB.
      const grownMiB = (process.resourceUsage().maxRSS - before) / 1024;
      expect(grownMiB).toBeLessThan(160);
    });

    it("honours a smaller decompression limit", async () => {
      await expectCode(bundleOf([A]), "BUNDLE_TOO_LARGE", { limits: { maxDecompressedBytes: 2048 } });
    });
  });

  describe("when the tar stream is malformed", () => {
    it("throws BUNDLE_TAR_INVALID for a bad header checksum", async () => {
      const bad = Buffer.concat([ustarHeader({ name: "a.cedar", size: 0, checksum: 1234 })]);
      await expectCode(tgz([manifestEntry(manifestFor([A])), bad]), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for a tar truncated inside an entry", async () => {
      const tar = tarOf([manifestEntry(manifestFor([A])), ...fileEntries([A])]);
      await expectCode(gzip(tar.subarray(0, 512 * 3 + 100)), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for a tar without its end-of-archive marker", async () => {
      await expectCode(gzip(Buffer.concat([manifestEntry(manifestFor([A])), ...fileEntries([A])])), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for a lone zero block followed by more entries (readers disagree on those)", async () => {
      const tar = Buffer.concat([manifestEntry(manifestFor([A])), Buffer.alloc(512), ...fileEntries([A]), END]);
      await expectCode(gzip(tar), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for data after the end-of-archive marker", async () => {
      const tar = Buffer.concat([tarOf([manifestEntry(manifestFor([A])), ...fileEntries([A])]), tarEntry({ name: "late.cedar", data: "x" })]);
      await expectCode(gzip(tar), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for a header without ustar magic", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), tarEntry({ name: A.name, data: A.content, magic: "none" })]), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for a size field that is not octal", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), tarEntry({ name: A.name, data: A.content, sizeField: "12x" })]), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for non-zero block padding", async () => {
      const e = Buffer.from(tarEntry({ name: A.name, data: A.content }));
      e[e.length - 1] = 0x41;
      await expectCode(tgz([manifestEntry(manifestFor([A])), e]), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for an archive with no entries", async () => {
      await expectCode(gzip(END), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for a regular file that carries a link target", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), tarEntry({ name: A.name, data: A.content, linkname: "/etc/passwd" })]), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for a pax 'type' record (the tar package would turn the file into another type)", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), paxEntry({ type: "SymbolicLink" }), ...fileEntries([A])]), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for a global pax header that sets path or size", async () => {
      await expectCode(tgz([paxEntry({ size: "0" }, true), manifestEntry(manifestFor([A])), ...fileEntries([A])]), "BUNDLE_TAR_INVALID");
      await expectCode(tgz([paxEntry({ path: "a.cedar" }, true), manifestEntry(manifestFor([A])), ...fileEntries([A])]), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID for a malformed pax record", async () => {
      await expectCode(tgz([paxEntry("99 path=a.cedar\n"), ...fileEntries([A]), manifestEntry(manifestFor([A]))]), "BUNDLE_TAR_INVALID");
      await expectCode(tgz([paxEntry("11 novalue\n"), ...fileEntries([A]), manifestEntry(manifestFor([A]))]), "BUNDLE_TAR_INVALID");
      await expectCode(tgz([paxEntry("x8 path=\n"), ...fileEntries([A]), manifestEntry(manifestFor([A]))]), "BUNDLE_TAR_INVALID");
      await expectCode(tgz([paxEntry(paxRecord("size", "0x10")), ...fileEntries([A]), manifestEntry(manifestFor([A]))]), "BUNDLE_TAR_INVALID");
    });

    it("throws BUNDLE_TAR_INVALID when the tar package reads the stream differently (pax value with a newline smuggling a path)", async () => {
      // Our walk reads one `comment` record; the tar package splits on newlines and sees `path=evil.cedar`.
      const smuggle = paxRecord("comment", `x\n${paxRecord("path", "evil.cedar").trimEnd()}`);
      const evil: F = { name: "evil.cedar", content: A.content };
      const bytes = tgz([manifestEntry(manifestFor([A, evil])), paxEntry(smuggle), tarEntry({ name: "a.cedar", data: A.content }), ...fileEntries([evil])]);
      const e = await expectCode(bytes, "BUNDLE_TAR_INVALID");
      expect(e.message).toMatch(/disagrees/);
    });
  });

  describe("when limits are exceeded", () => {
    it("throws BUNDLE_TOO_LARGE for an entry over 4 MiB", async () => {
      const big: F = { name: "big.cedar", content: Buffer.alloc(DEFAULT_BUNDLE_LIMITS.maxEntryBytes + 1, 0x20) };
      await expectCode(bundleOf([big]), "BUNDLE_TOO_LARGE");
    });

    it("throws BUNDLE_TOO_LARGE for an entry whose header claims more than 4 MiB, before reading it", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), ustarHeader({ name: "a.cedar", size: 5 * 1024 * 1024 })]), "BUNDLE_TOO_LARGE");
    });

    it("throws BUNDLE_TOO_LARGE for an oversized pax header", async () => {
      await expectCode(tgz([paxEntry({ comment: "c".repeat(70 * 1024) }), ...fileEntries([A])]), "BUNDLE_TOO_LARGE");
    });

    it("throws BUNDLE_TOO_MANY_ENTRIES for more than 1,000 entries", async () => {
      const entries = Array.from({ length: 1001 }, (_, i) => tarEntry({ name: `p${i}.cedar`, data: "" }));
      await expectCode(tgz(entries), "BUNDLE_TOO_MANY_ENTRIES");
    });

    it("accepts exactly the entry limit", async () => {
      const files = Array.from({ length: 9 }, (_, i): F => ({ name: `p${i}.cedar`, content: `// ${i}\n` }));
      const limits: Partial<BundleLimits> = { maxEntries: 10 };
      expect((await readBundle(bundleOf(files), { limits })).files).toHaveLength(9);
      await expectCode(bundleOf([...files, { name: "p9.cedar", content: "" }]), "BUNDLE_TOO_MANY_ENTRIES", { limits });
    });
  });

  describe("when an entry name is unsafe", () => {
    const unsafe = (name: string | Buffer, more: Partial<Parameters<typeof tarEntry>[0]> = {}): Buffer =>
      tgz([manifestEntry(manifestFor([A])), ...fileEntries([A]), tarEntry({ name, data: "x", ...more })]);

    it("throws BUNDLE_PATH_UNSAFE for an absolute path", async () => {
      await expectCode(unsafe("/etc/x"), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for a '..' traversal", async () => {
      await expectCode(unsafe("../x.cedar"), "BUNDLE_PATH_UNSAFE");
      await expectCode(unsafe(".."), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for leading ./ combinations", async () => {
      await expectCode(unsafe("./../x.cedar"), "BUNDLE_PATH_UNSAFE");
      await expectCode(unsafe("./a.cedar"), "BUNDLE_PATH_UNSAFE");
      await expectCode(unsafe(".//x.cedar"), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for any '/' (bundles are flat)", async () => {
      await expectCode(unsafe("sub/x.cedar"), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for a backslash", async () => {
      await expectCode(unsafe("..\\..\\x.cedar"), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for a drive-letter path", async () => {
      await expectCode(unsafe("C:x.cedar"), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for control characters", async () => {
      await expectCode(unsafe("x\x1b[2J.cedar"), "BUNDLE_PATH_UNSAFE");
      await expectCode(unsafe("x\n.cedar"), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for bytes hidden after the name's NUL terminator", async () => {
      await expectCode(unsafe(Buffer.from("x.cedar\0../../etc/passwd", "latin1")), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for a non-ASCII name", async () => {
      await expectCode(unsafe("caf\u00e9.cedar"), "BUNDLE_PATH_UNSAFE");
      await expectCode(unsafe(Buffer.from([0x78, 0xff, 0x2e, 0x63])), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for a ustar prefix (it puts the entry in a directory)", async () => {
      await expectCode(unsafe("x.cedar", { prefix: "etc" }), "BUNDLE_PATH_UNSAFE");
      await expectCode(unsafe("x.cedar", { prefix: ".." }), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for a pax path with traversal", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), paxEntry({ path: "../evil.cedar" }), tarEntry({ name: "a.cedar", data: A.content })]), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE for a pax path with a NUL (the tar package would cut it there)", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), paxEntry({ path: "a.cedar\0/../../x" }), tarEntry({ name: "a.cedar", data: A.content })]), "BUNDLE_PATH_UNSAFE");
    });

    it("throws BUNDLE_PATH_UNSAFE when a safe pax path hides an unsafe ustar name (read by tools without pax)", async () => {
      const e = await expectCode(tgz([manifestEntry(manifestFor([A])), paxEntry({ path: "a.cedar" }), tarEntry({ name: "../../evil.cedar", data: A.content })]), "BUNDLE_PATH_UNSAFE");
      expect(e.message).toMatch(/ustar name/);
    });

    it("throws BUNDLE_PATH_UNSAFE for a GNU long name with traversal", async () => {
      const longName = tarEntry({ name: "././@LongLink", type: "L", data: "../evil.cedar\0" });
      await expectCode(tgz([manifestEntry(manifestFor([A])), longName, tarEntry({ name: "a.cedar", data: A.content })]), "BUNDLE_PATH_UNSAFE");
    });

    it("quotes and escapes the hostile name in the message", async () => {
      const e = await expectCode(unsafe("../\x1b[31mred"), "BUNDLE_PATH_UNSAFE");
      expect(e.message).toContain('"../\\u001b[31mred"');
      expect(e.message).not.toContain("\x1b");
    });
  });

  describe("when an entry is not a regular file", () => {
    const withEntry = (e: Buffer): Buffer => tgz([manifestEntry(manifestFor([A])), ...fileEntries([A]), e]);

    it("throws BUNDLE_LINK_FORBIDDEN for a symbolic link", async () => {
      await expectCode(withEntry(ustarHeader({ name: "evil.cedar", type: "2", linkname: "/etc/passwd" })), "BUNDLE_LINK_FORBIDDEN");
    });

    it("throws BUNDLE_LINK_FORBIDDEN for a hard link", async () => {
      await expectCode(withEntry(ustarHeader({ name: "evil.cedar", type: "1", linkname: "a.cedar" })), "BUNDLE_LINK_FORBIDDEN");
    });

    it("throws BUNDLE_LINK_FORBIDDEN for a symlink with a traversing name", async () => {
      await expectCode(withEntry(ustarHeader({ name: "../x", type: "2", linkname: "/" })), "BUNDLE_LINK_FORBIDDEN");
    });

    it.each([
      ["3", "a character device"],
      ["4", "a block device"],
      ["5", "a directory"],
      ["6", "a FIFO"],
      ["7", "a contiguous file"],
      ["S", "a GNU sparse file"],
      ["Z", "an entry of unknown type"],
    ])("throws BUNDLE_ENTRY_TYPE_FORBIDDEN for type %s (%s)", async (type, what) => {
      const e = await expectCode(withEntry(ustarHeader({ name: type === "5" ? "policies/" : "dev.cedar", type })), "BUNDLE_ENTRY_TYPE_FORBIDDEN");
      expect(e.message).toContain(what);
    });
  });

  describe("when an entry appears twice", () => {
    it("throws BUNDLE_DUPLICATE_ENTRY for the same policy file twice", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), ...fileEntries([A]), tarEntry({ name: "a.cedar", data: "permit (principal, action, resource);" })]), "BUNDLE_DUPLICATE_ENTRY");
    });

    it("throws BUNDLE_DUPLICATE_ENTRY for two manifests", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), ...fileEntries([A]), manifestEntry(manifestFor([A]))]), "BUNDLE_DUPLICATE_ENTRY");
    });

    it("throws BUNDLE_DUPLICATE_ENTRY for names that differ only in case", async () => {
      const upper: F = { name: "A.cedar", content: "forbid (principal, action, resource);" };
      await expectCode(bundleOf([A, upper]), "BUNDLE_DUPLICATE_ENTRY");
    });
  });

  describe("when manifest.json is wrong", () => {
    it("throws BUNDLE_MANIFEST_INVALID when it is missing", async () => {
      await expectCode(tgz(fileEntries([A])), "BUNDLE_MANIFEST_INVALID");
    });

    it("throws BUNDLE_MANIFEST_INVALID when it is not JSON", async () => {
      await expectCode(tgz([manifestEntry("{ not json"), ...fileEntries([A])]), "BUNDLE_MANIFEST_INVALID");
    });

    it("throws BUNDLE_MANIFEST_INVALID when it is not UTF-8", async () => {
      await expectCode(tgz([tarEntry({ name: "manifest.json", data: Buffer.from([0x7b, 0xff, 0x7d]) }), ...fileEntries([A])]), "BUNDLE_MANIFEST_INVALID");
    });

    it("throws BUNDLE_MANIFEST_INVALID listing every bad field", async () => {
      const bad = { ...manifestFor([A]), name: "../x", policy_bundle_version: "v1", engine: "rego", created_at: "yesterday", extra: 1, files: { "a.txt": "nope" } };
      const e = await expectCode(tgz([manifestEntry(JSON.stringify(bad)), ...fileEntries([A])]), "BUNDLE_MANIFEST_INVALID");
      expect(e.details.fields).toEqual(expect.arrayContaining(["name", "policy_bundle_version", "engine", "created_at", "extra", 'files["a.txt"]']));
    });

    it("throws BUNDLE_MANIFEST_INVALID for a required_runtime_version that is not a range", async () => {
      const e = await expectCode(bundleOf([A], [], { required_runtime_version: "soon" }), "BUNDLE_MANIFEST_INVALID");
      expect(e.details.fields).toEqual(["required_runtime_version"]);
    });

    it("throws BUNDLE_MANIFEST_INVALID for an empty file list", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([]))]), "BUNDLE_MANIFEST_INVALID");
    });

    it("throws BUNDLE_MANIFEST_INVALID for valid JSON that is not in canonical form", async () => {
      await expectCode(tgz([manifestEntry(JSON.stringify(manifestFor([A]))), ...fileEntries([A])]), "BUNDLE_MANIFEST_INVALID");
    });

    it("throws BUNDLE_MANIFEST_INVALID for duplicate keys (JSON parsers disagree on which wins)", async () => {
      const text = serializeManifest(manifestFor([A])).replace('{\n  "name": "demo"', '{\n  "name": "evil",\n  "name": "demo"');
      await expectCode(tgz([manifestEntry(text), ...fileEntries([A])]), "BUNDLE_MANIFEST_INVALID");
    });

    it("throws BUNDLE_MANIFEST_INVALID for a __proto__ key", async () => {
      const text = serializeManifest(manifestFor([A])).replace('"files": {', '"files": {\n    "__proto__": "x",');
      await expectCode(tgz([manifestEntry(text), ...fileEntries([A])]), "BUNDLE_MANIFEST_INVALID");
    });
  });

  describe("when the files do not match the manifest", () => {
    it("throws BUNDLE_UNLISTED_FILE for a file the manifest does not list", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), ...fileEntries([A, B])]), "BUNDLE_UNLISTED_FILE");
    });

    it("throws BUNDLE_UNLISTED_FILE for a harmless-looking extra like README.md", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A])), ...fileEntries([A]), tarEntry({ name: "README.md", data: "hi" })]), "BUNDLE_UNLISTED_FILE");
    });

    it("throws BUNDLE_FILE_MISSING for a listed file the archive lacks", async () => {
      await expectCode(tgz([manifestEntry(manifestFor([A, B])), ...fileEntries([A])]), "BUNDLE_FILE_MISSING");
    });

    it("throws BUNDLE_DIGEST_MISMATCH (exit 4) when a file was altered", async () => {
      const altered: F = { name: "a.cedar", content: "permit (principal, action, resource);\n" };
      const e = await expectCode(tgz([manifestEntry(manifestFor([A])), ...fileEntries([altered])]), "BUNDLE_DIGEST_MISMATCH");
      expect(e.exitCode).toBe(ExitCodes.verification);
      expect(e.details).toMatchObject({ entry: "a.cedar", expected: sha256Digest(A.content), actual: sha256Digest(altered.content) });
    });

    it("throws BUNDLE_HASH_MISMATCH (exit 4) when bundle_hash does not cover the files", async () => {
      const e = await expectCode(bundleOf([A, B], [], { bundle_hash: bundleHash([A]) }), "BUNDLE_HASH_MISMATCH");
      expect(e.exitCode).toBe(ExitCodes.verification);
    });

    it("throws BUNDLE_MANIFEST_INVALID (with its own hint) when a policy file is not UTF-8", async () => {
      const latin1: F = { name: "a.cedar", content: Buffer.from("// caf\xe9\n", "latin1") };
      const e = await expectCode(bundleOf([latin1]), "BUNDLE_MANIFEST_INVALID");
      expect(e.message).toMatch(/not UTF-8/);
      expect(e.hint).toMatch(/UTF-8/);
    });
  });

  describe("when the runtime version is checked", () => {
    it("throws BUNDLE_INCOMPATIBLE when the runtime does not satisfy required_runtime_version", async () => {
      const bytes = bundleOf([A], [], { required_runtime_version: ">=2.0.0" });
      const e = await expectCode(bytes, "BUNDLE_INCOMPATIBLE", { runtimeVersion: "1.9.9" });
      expect(e.details).toMatchObject({ required_runtime_version: ">=2.0.0", runtime_version: "1.9.9" });
    });

    it("uses RUNTIME_VERSION by default", async () => {
      await expectCode(bundleOf([A], [], { required_runtime_version: ">=999.0.0" }), "BUNDLE_INCOMPATIBLE");
      expect((await readBundle(bundleOf([A], [], { required_runtime_version: ">=0.0.1" }))).manifest.required_runtime_version).toBe(">=0.0.1");
    });

    it("accepts the original's space-separated constraints and pre-release runtimes", async () => {
      const bytes = bundleOf([A], [], { required_runtime_version: ">=0.1.0 <1.0.0" });
      await expect(readBundle(bytes, { runtimeVersion: "0.5.0" })).resolves.toBeDefined();
      await expect(readBundle(bytes, { runtimeVersion: "0.9.0-rc.1" })).resolves.toBeDefined();
      await expectCode(bytes, "BUNDLE_INCOMPATIBLE", { runtimeVersion: "1.0.0" });
    });

    it('accepts any runtime for ""', async () => {
      await expect(readBundle(bundleOf([A]), { runtimeVersion: "42.0.0" })).resolves.toBeDefined();
    });

    it("throws BUNDLE_INCOMPATIBLE for a runtime version that is not semver", async () => {
      await expectCode(bundleOf([A], [], { required_runtime_version: ">=0.1.0" }), "BUNDLE_INCOMPATIBLE", { runtimeVersion: "latest" });
    });

    it("checks integrity before compatibility (a tampered bundle is reported as tampered)", async () => {
      const altered: F = { name: "a.cedar", content: "x" };
      await expectCode(tgz([manifestEntry(manifestFor([A], { required_runtime_version: ">=99.0.0" })), ...fileEntries([altered])]), "BUNDLE_DIGEST_MISMATCH");
    });

    it("openBundle skips only the compatibility check", async () => {
      expect((await openBundle(bundleOf([A], [], { required_runtime_version: ">=99.0.0" }))).manifest.name).toBe("demo");
    });
  });
});

describe("#bundleHash", () => {
  let bytes: Buffer;
  beforeAll(() => {
    bytes = Buffer.concat([
      Buffer.from("a.cedar\0", "utf8"), Buffer.from(`${sha256Digest(A.content).slice(7)}\n`),
      Buffer.from("b.cedar\0", "utf8"), Buffer.from(`${sha256Digest(B.content).slice(7)}\n`),
    ]);
  });

  it("is sha256 over name, NUL, hex digest, newline per file in byte-wise name order", () => {
    expect(bundleHash([B, A])).toBe(sha256Digest(bytes));
  });

  it("sorts byte-wise, not by locale (upper case before lower case)", () => {
    const z: F = { name: "Z.cedar", content: "" };
    expect(bundleHash([A, z])).toBe(bundleHash([z, A]));
    const manual = Buffer.concat([Buffer.from(`Z.cedar\0${sha256Digest("").slice(7)}\n`), Buffer.from(`a.cedar\0${sha256Digest(A.content).slice(7)}\n`)]);
    expect(bundleHash([A, z])).toBe(sha256Digest(manual));
  });

  it("throws TypeError for duplicate names", () => {
    expect(() => bundleHash([A, A])).toThrow(TypeError);
  });
});
