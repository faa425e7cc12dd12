import { chmod, cp, mkdir, mkdtemp, readFile, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256Digest } from "../../lib/index.js";
import { buildBundle } from "./index.js";
import type { BuildBundleOptions } from "./index.js";
import { DEFAULT_BUNDLE_LIMITS, readBundle, serializeManifest } from "./index.js";
import { PolicyError } from "../errors.js";
import type { PolicyErrorCode } from "../errors.js";
import { EXAMPLE_POLICY_DIR } from "../../../test/helpers/policies.js";

const EXAMPLES = EXAMPLE_POLICY_DIR;
const OPTS: BuildBundleOptions = { name: "demo", version: "1.0.0", createdAt: new Date(0) };

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "bundle-build-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

let n = 0;
/** A fresh policy directory holding `files` (a string is written as UTF-8). */
async function dirWith(files: Record<string, string | Buffer>): Promise<string> {
  const dir = join(root, `src-${n++}`);
  await mkdir(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  return dir;
}

async function expectCode(p: Promise<unknown>, code: PolicyErrorCode): Promise<PolicyError> {
  const e = await p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (err: unknown) => err,
  );
  expect(e, String(e)).toBeInstanceOf(PolicyError);
  expect((e as PolicyError).code, (e as PolicyError).message).toBe(code);
  return e as PolicyError;
}

interface TarHeaderView {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  uname: string;
  gname: string;
  size: number;
}

/** Header fields of every entry, read straight from the bytes (no tar library). */
function headers(gz: Buffer): TarHeaderView[] {
  const tar = gunzipSync(gz);
  const out: TarHeaderView[] = [];
  const str = (b: Buffer, off: number, len: number): string => b.toString("latin1", off, off + len).replace(/\0[\s\S]*$/, "");
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((x) => x === 0)) break;
    const size = parseInt(str(h, 124, 12), 8);
    const num = (off: number, len: number): number => parseInt(str(h, off, len), 8);
    out.push({ name: str(h, 0, 100), type: str(h, 156, 1), mode: num(100, 8), uid: num(108, 8), gid: num(116, 8), mtime: num(136, 12), uname: str(h, 265, 32), gname: str(h, 297, 32), size });
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

describe("#buildBundle", () => {
  describe("when the directory holds valid policies", () => {
    it("writes a manifest describing every .cedar file", async () => {
      const built = await buildBundle(EXAMPLES, OPTS);
      const echo = await readFile(join(EXAMPLES, "echo_allow.cedar"));
      const shell = await readFile(join(EXAMPLES, "shell_deny.cedar"));
      expect(built.manifest).toEqual({
        name: "demo",
        policy_bundle_version: "1.0.0",
        required_runtime_version: "",
        bundle_hash: expect.stringMatching(/^sha256:[a-f0-9]{64}$/) as string,
        created_at: "1970-01-01T00:00:00Z",
        engine: "cedar",
        files: { "echo_allow.cedar": sha256Digest(echo), "shell_deny.cedar": sha256Digest(shell) },
      });
      expect(built.digest).toBe(sha256Digest(built.bytes));
    });

    it("computes bundle_hash as documented: name, NUL, sha256 hex, newline, in byte-wise order", async () => {
      const built = await buildBundle(EXAMPLES, OPTS);
      const lines = await Promise.all(
        ["echo_allow.cedar", "shell_deny.cedar"].map(async (f) => Buffer.concat([Buffer.from(`${f}\0`), Buffer.from(`${sha256Digest(await readFile(join(EXAMPLES, f))).slice(7)}\n`)])),
      );
      expect(built.manifest.bundle_hash).toBe(sha256Digest(Buffer.concat(lines)));
    });

    it("reads back with readBundle", async () => {
      const built = await buildBundle(EXAMPLES, { ...OPTS, runtimeVersion: ">=0.1.0 <1.0.0" });
      const bundle = await readBundle(built.bytes, { runtimeVersion: "0.1.0" });
      expect(bundle.manifest).toEqual(built.manifest);
      expect(bundle.digest).toBe(built.digest);
    });

    it("lays out the archive deterministically: manifest.json first, sorted files, 0644, owner 0/0, mtime 0, no user names", async () => {
      const dir = await dirWith({ "z.cedar": "// z\n", "B.cedar": "// B\n", "a.cedar": "// a\n" });
      const built = await buildBundle(dir, OPTS);
      const hs = headers(built.bytes);
      expect(hs.map((h) => h.name)).toEqual(["manifest.json", "B.cedar", "a.cedar", "z.cedar"]);
      for (const h of hs) {
        expect(h).toMatchObject({ type: "0", mode: 0o644, uid: 0, gid: 0, mtime: 0, uname: "", gname: "" });
      }
      const tar = gunzipSync(built.bytes);
      expect(tar.subarray(512, 512 + hs[0]!.size).toString("utf8")).toBe(serializeManifest(built.manifest));
    });

    it("writes a gzip header without timestamp or name and with a fixed OS byte", async () => {
      const built = await buildBundle(EXAMPLES, OPTS);
      expect([...built.bytes.subarray(0, 10)]).toEqual([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03]);
    });

    it("ignores README and markdown files", async () => {
      const dir = await dirWith({ "a.cedar": "// a\n", "README": "x", "readme.txt": "x", "NOTES.md": "x", "design.markdown": "x" });
      expect(Object.keys((await buildBundle(dir, OPTS)).manifest.files)).toEqual(["a.cedar"]);
    });

    it("stores a 134-character name with a pax path record", async () => {
      const long = `${"p".repeat(128)}.cedar`;
      const built = await buildBundle(await dirWith({ [long]: "// long\n" }), OPTS);
      expect(headers(built.bytes).map((h) => h.type)).toEqual(["0", "x", "0"]);
      expect((await readBundle(built.bytes)).files.map((f) => f.name)).toEqual([long]);
    });
  });

  describe("when built twice", () => {
    it("gives byte-identical bundles for the same inputs and created_at", async () => {
      const a = await buildBundle(EXAMPLES, OPTS);
      const b = await buildBundle(EXAMPLES, OPTS);
      expect(b.bytes.equals(a.bytes)).toBe(true);
      expect(b.digest).toBe(a.digest);
    });

    it("ignores file modes, times and directory order of a copy", async () => {
      const copy = join(root, `copy-${n++}`);
      await cp(EXAMPLES, copy, { recursive: true });
      await chmod(join(copy, "echo_allow.cedar"), 0o600);
      await utimes(join(copy, "shell_deny.cedar"), new Date(2_000_000_000_000), new Date(2_000_000_000_000));
      await writeFile(join(copy, "README.md"), "notes that are not bundled\n");
      expect((await buildBundle(copy, OPTS)).bytes.equals((await buildBundle(EXAMPLES, OPTS)).bytes)).toBe(true);
    });

    it("changes the digest when a policy changes", async () => {
      const a = await buildBundle(await dirWith({ "a.cedar": "permit (principal, action, resource);" }), OPTS);
      const b = await buildBundle(await dirWith({ "a.cedar": "forbid (principal, action, resource);" }), OPTS);
      expect(b.digest).not.toBe(a.digest);
      expect(b.manifest.bundle_hash).not.toBe(a.manifest.bundle_hash);
    });
  });

  describe("when created_at is not given", () => {
    it("takes SOURCE_DATE_EPOCH", async () => {
      const built = await buildBundle(EXAMPLES, { name: "demo", version: "1.0.0", env: { SOURCE_DATE_EPOCH: "1700000000" } });
      expect(built.manifest.created_at).toBe("2023-11-14T22:13:20Z");
      const again = await buildBundle(EXAMPLES, { name: "demo", version: "1.0.0", env: { SOURCE_DATE_EPOCH: "1700000000" } });
      expect(again.bytes.equals(built.bytes)).toBe(true);
    });

    it("falls back to the clock, truncated to the second", async () => {
      const built = await buildBundle(EXAMPLES, { name: "demo", version: "1.0.0", env: {}, clock: { now: () => Date.parse("2024-05-06T07:08:09.999Z") } });
      expect(built.manifest.created_at).toBe("2024-05-06T07:08:09Z");
    });

    it("throws BUNDLE_SOURCE_INVALID for a malformed SOURCE_DATE_EPOCH", async () => {
      await expectCode(buildBundle(EXAMPLES, { name: "demo", version: "1.0.0", env: { SOURCE_DATE_EPOCH: "yesterday" } }), "BUNDLE_SOURCE_INVALID");
    });

    it("throws BUNDLE_SOURCE_INVALID for an invalid createdAt", async () => {
      await expectCode(buildBundle(EXAMPLES, { ...OPTS, createdAt: new Date(Number.NaN) }), "BUNDLE_SOURCE_INVALID");
    });
  });

  describe("when the options are invalid", () => {
    it("throws BUNDLE_MANIFEST_INVALID for a version that is not strict semver", async () => {
      for (const version of ["1.0", "v1.0.0", "=1.0.0", "latest", " 1.0.0"]) {
        const e = await expectCode(buildBundle(EXAMPLES, { ...OPTS, version }), "BUNDLE_MANIFEST_INVALID");
        expect(e.message).toContain("--version");
      }
    });

    it("throws BUNDLE_MANIFEST_INVALID for a runtime version that is not a range", async () => {
      for (const runtimeVersion of ["soon", ">=", " >=1.0.0"]) {
        const e = await expectCode(buildBundle(EXAMPLES, { ...OPTS, runtimeVersion }), "BUNDLE_MANIFEST_INVALID");
        expect(e.message).toContain("--runtime-version");
      }
    });

    it("accepts the usual range forms", async () => {
      for (const runtimeVersion of [">=0.1.0 <1.0.0", "^0.1.0", "~0.1", "*", "0.1.x || >=2.0.0", ""]) {
        expect((await buildBundle(EXAMPLES, { ...OPTS, runtimeVersion })).manifest.required_runtime_version).toBe(runtimeVersion);
      }
    });

    it("throws BUNDLE_MANIFEST_INVALID for a bad bundle name", async () => {
      for (const name of ["", "../x", "a b", "-x", "x".repeat(129)]) {
        await expectCode(buildBundle(EXAMPLES, { ...OPTS, name }), "BUNDLE_MANIFEST_INVALID");
      }
    });
  });

  describe("when a policy does not compile", () => {
    it("throws POLICY_COMPILE_FAILED naming the file, line and column (a comma missing before resource)", async () => {
      const dir = await dirWith({ "a.cedar": "permit (principal, action, resource);\n", "b.cedar": '// b\npermit (principal, action == Action::"x" resource);\n' });
      const e = await expectCode(buildBundle(dir, OPTS), "POLICY_COMPILE_FAILED");
      expect(e.message).toMatch(/^b\.cedar:2:42: /);
      expect(e.details).toMatchObject({ file: "b.cedar", line: 2, column: 42 });
    });

    it("throws POLICY_COMPILE_FAILED for what parses only as a template or has duplicate @id, as a node's load does", async () => {
      await expectCode(buildBundle(await dirWith({ "t.cedar": "permit (principal == ?principal, action, resource);" }), OPTS), "POLICY_COMPILE_FAILED");
      const dup = '@id("x") permit (principal, action, resource);\n';
      await expectCode(buildBundle(await dirWith({ "a.cedar": dup, "b.cedar": dup }), OPTS), "POLICY_COMPILE_FAILED");
    });
  });

  describe("when the directory is not a clean set of policies", () => {
    it("throws BUNDLE_SOURCE_INVALID for a missing directory", async () => {
      await expectCode(buildBundle(join(root, "does-not-exist"), OPTS), "BUNDLE_SOURCE_INVALID");
    });

    it("throws BUNDLE_SOURCE_INVALID when there is no .cedar file", async () => {
      await expectCode(buildBundle(await dirWith({ "README.md": "only docs" }), OPTS), "BUNDLE_SOURCE_INVALID");
      await expectCode(buildBundle(await dirWith({}), OPTS), "BUNDLE_SOURCE_INVALID");
    });

    it("throws BUNDLE_SOURCE_INVALID naming a subdirectory", async () => {
      const dir = await dirWith({ "a.cedar": "// a\n" });
      await mkdir(join(dir, "nested"));
      const e = await expectCode(buildBundle(dir, OPTS), "BUNDLE_SOURCE_INVALID");
      expect(e.message).toContain('"nested"');
    });

    it("throws BUNDLE_SOURCE_INVALID naming a symlink, even to a policy", async () => {
      const dir = await dirWith({ "a.cedar": "// a\n" });
      await symlink(join(EXAMPLES, "echo_allow.cedar"), join(dir, "linked.cedar"));
      const e = await expectCode(buildBundle(dir, OPTS), "BUNDLE_SOURCE_INVALID");
      expect(e.message).toContain('"linked.cedar"');
    });

    it("throws BUNDLE_SOURCE_INVALID naming a file that is neither policy nor README", async () => {
      const e = await expectCode(buildBundle(await dirWith({ "a.cedar": "// a\n", "notes.txt": "x" }), OPTS), "BUNDLE_SOURCE_INVALID");
      expect(e.message).toContain('"notes.txt"');
      await expectCode(buildBundle(await dirWith({ "a.cedar": "// a\n", ".DS_Store": "x" }), OPTS), "BUNDLE_SOURCE_INVALID");
    });

    it("throws BUNDLE_SOURCE_INVALID for a .cedar file with a name outside the allowed alphabet", async () => {
      for (const name of ["a b.cedar", ".hidden.cedar", "-x.cedar", "caf\u00e9.cedar", ".cedar", `${"x".repeat(129)}.cedar`]) {
        const e = await expectCode(buildBundle(await dirWith({ [name]: "// x\n" }), OPTS), "BUNDLE_SOURCE_INVALID");
        expect(e.details).toMatchObject({ entry: name });
      }
    });

    it("throws BUNDLE_SOURCE_INVALID for names that differ only in case", async () => {
      const dir = await dirWith({ "a.cedar": "// a\n" });
      try {
        await writeFile(join(dir, "A.cedar"), "// A\n", { flag: "wx" });
      } catch {
        return; // case-insensitive file system: the situation cannot arise
      }
      await expectCode(buildBundle(dir, OPTS), "BUNDLE_SOURCE_INVALID");
    });

    it("throws BUNDLE_SOURCE_INVALID for policy text that is not UTF-8", async () => {
      await expectCode(buildBundle(await dirWith({ "a.cedar": Buffer.from([0x2f, 0x2f, 0xff, 0x0a]) }), OPTS), "BUNDLE_SOURCE_INVALID");
    });

    it("throws BUNDLE_TOO_LARGE for a policy file over 4 MiB", async () => {
      await expectCode(buildBundle(await dirWith({ "a.cedar": Buffer.alloc(DEFAULT_BUNDLE_LIMITS.maxEntryBytes + 1, 0x20) }), OPTS), "BUNDLE_TOO_LARGE");
    });

    it("throws BUNDLE_TOO_MANY_ENTRIES for more files than a bundle may hold", async () => {
      const files = Object.fromEntries(Array.from({ length: DEFAULT_BUNDLE_LIMITS.maxEntries }, (_, i) => [`p${i}.cedar`, ""]));
      await expectCode(buildBundle(await dirWith(files), OPTS), "BUNDLE_TOO_MANY_ENTRIES");
    });
  });
});
