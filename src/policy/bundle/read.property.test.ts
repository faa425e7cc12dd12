// Property tests for the bundle reader: whatever the bytes, readBundle either
// returns a bundle whose every file matches its manifest digest, or throws a
// PolicyError — never another error, never a crash or hang. Seeds are printed by
// fast-check on failure; rerun with { seed, path } to reproduce.
import { gunzipSync } from "node:zlib";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { sha256Digest } from "../../lib/index.js";
import { BLOCK, gzip, paxEntry, tarEntry, tarOf, ustarHeader } from "../../../test/helpers/raw-tar.js";
import { buildBundle } from "./index.js";
import { bundleHash, readBundle, serializeManifest } from "./index.js";
import type { BundleLimits } from "./index.js";
import { PolicyError } from "../errors.js";
import type { BundleManifest, PolicyBundle } from "../types.js";
import { EXAMPLE_POLICY_DIR } from "../../../test/helpers/policies.js";

const EXAMPLES = EXAMPLE_POLICY_DIR;
/** Small limits so generated archives reach them too. */
const LIMITS: Partial<BundleLimits> = { maxEntries: 8, maxEntryBytes: 4096, maxDecompressedBytes: 256 * 1024, maxExtendedHeaderBytes: 1024 };

/** What must hold whenever readBundle returns. */
function assertConsistent(bytes: Uint8Array, b: PolicyBundle): void {
  expect(b.digest).toBe(sha256Digest(bytes));
  expect(b.size).toBe(bytes.length);
  expect(b.files.map((f) => f.name)).toEqual(Object.keys(b.manifest.files));
  for (const f of b.files) expect(sha256Digest(Buffer.from(f.text, "utf8"))).toBe(b.manifest.files[f.name]);
  expect(bundleHash(b.files.map((f) => ({ name: f.name, content: f.text })))).toBe(b.manifest.bundle_hash);
}

/** Runs the reader; the only acceptable outcomes are a consistent bundle or a PolicyError. */
async function readOrPolicyError(bytes: Uint8Array, limits: Partial<BundleLimits> = LIMITS): Promise<string> {
  let b: PolicyBundle;
  try {
    b = await readBundle(bytes, { limits });
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    return e.code;
  }
  assertConsistent(bytes, b);
  return "ok";
}

interface Mutation {
  kind: "flip" | "truncate" | "insert" | "overwrite";
  at: number;
  bit: number;
  bytes: Uint8Array;
}

const arbMutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom("flip", "truncate", "insert", "overwrite"),
  at: fc.nat(),
  bit: fc.nat({ max: 7 }),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
});

function mutate(src: Uint8Array, muts: readonly Mutation[]): Buffer {
  let b = Buffer.from(src);
  for (const m of muts) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === "flip") b[at]! ^= 1 << m.bit;
    else if (m.kind === "truncate") b = b.subarray(0, at);
    else if (m.kind === "insert") b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    else b.set(m.bytes.subarray(0, b.length - at), at);
  }
  return b;
}

/** Recomputes the checksum of every 512-byte block that looks like a ustar header, so mutations get past it. */
function fixChecksums(tar: Buffer): Buffer {
  for (let off = 0; off + BLOCK <= tar.length; off += BLOCK) {
    const h = tar.subarray(off, off + BLOCK);
    if (h.toString("latin1", 257, 262) !== "ustar") continue;
    h.fill(0x20, 148, 156);
    let sum = 0;
    for (const x of h) sum += x;
    h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  }
  return tar;
}

// Names: valid ones, near misses and hostile ones.
const arbName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("a.cedar", "b.cedar", "c.cedar", "d.cedar", "e.cedar", "A.cedar", "manifest.json", "README.md") },
  { weight: 2, arbitrary: fc.constantFrom("../a.cedar", "/etc/passwd", "./a.cedar", "sub/a.cedar", "a\\b.cedar", "..", ".", "", "a\0b.cedar", "a\nb.cedar", "C:a.cedar") },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);

const arbContent = fc.oneof(
  fc.constantFrom("permit (principal, action, resource);\n", "forbid (principal, action, resource);\n", ""),
  fc.string({ maxLength: 64 }),
  fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
);

type GenEntry =
  | { kind: "file"; name: string; content: string | Buffer; type: string }
  | { kind: "pax"; key: string; value: string; global: boolean }
  | { kind: "longname"; name: string };

const arbEntry: fc.Arbitrary<GenEntry> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant("file" as const), name: arbName, content: arbContent, type: fc.oneof({ weight: 12, arbitrary: fc.constant("0") }, { weight: 1, arbitrary: fc.constantFrom("\0", "1", "2", "3", "5", "6", "7", "K", "Z") }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("pax" as const), key: fc.constantFrom("path", "size", "comment", "type", "linkpath", "mtime"), value: fc.oneof(arbName, fc.constantFrom("0", "10", "99999", "-1")), global: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("longname" as const), name: arbName }) },
);

/** Encodes a generated entry; a name too long for the header is cut (still hostile enough). */
function encode(e: GenEntry): Buffer {
  if (e.kind === "pax") return paxEntry({ [e.key]: e.value }, e.global);
  if (e.kind === "longname") return tarEntry({ name: "././@LongLink", type: "L", data: `${e.name}\0` });
  const name = Buffer.from(e.name, "utf8").subarray(0, 100);
  if (e.type === "1" || e.type === "2") return ustarHeader({ name, type: e.type, linkname: "a.cedar" });
  return tarEntry({ name, type: e.type, data: e.content });
}

/**
 * A manifest for the generated file entries: right (variant 0, so the deeper
 * checks run), listing a file the archive lacks (1), for another runtime (2), with a wrong file
 * digest (3) or a wrong bundle_hash (4).
 */
function manifestFor(entries: readonly GenEntry[], variant: number): Buffer {
  const files = new Map<string, string | Buffer>();
  for (const e of entries) if (e.kind === "file" && e.name !== "manifest.json" && /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.cedar$/.test(e.name)) files.set(e.name, e.content);
  const list = [...files].map(([name, content]) => ({ name, content }));
  if (variant === 1) list.push({ name: "zz-missing.cedar", content: "" });
  const digests = Object.fromEntries(list.map((f) => [f.name, sha256Digest(f.content)]));
  if (variant === 3 && list.length > 0) digests[list[0]!.name] = sha256Digest("something else");
  const m: BundleManifest = {
    name: "prop",
    policy_bundle_version: "1.0.0",
    required_runtime_version: variant === 2 ? ">=99.0.0" : "",
    bundle_hash: variant === 4 ? bundleHash(list.slice(1)) : bundleHash(list),
    created_at: "2024-01-01T00:00:00Z",
    engine: "cedar",
    files: digests,
  };
  return tarEntry({ name: "manifest.json", data: serializeManifest(m) });
}

describe("readBundle on hostile input (property)", () => {
  let valid: Buffer;
  let validTar: Buffer;
  beforeAll(async () => {
    valid = (await buildBundle(EXAMPLES, { name: "demo", version: "1.0.0", createdAt: new Date(0) })).bytes;
    validTar = gunzipSync(valid);
  });

  it("returns a consistent bundle or throws PolicyError for arbitrary bytes", async () => {
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), async (bytes) => void (await readOrPolicyError(bytes))), { numRuns: 1000 });
  });

  it("does the same for arbitrary bytes behind a gzip header and inside gzip", async () => {
    const magic = Uint8Array.of(0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3);
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 4096 }), fc.boolean(), async (bytes, wrap) => void (await readOrPolicyError(wrap ? gzip(bytes) : Buffer.concat([magic, bytes])))),
      { numRuns: 1000 },
    );
  });

  it("does the same for bit flips, truncations and insertions of a valid bundle", async () => {
    expect(await readOrPolicyError(valid)).toBe("ok");
    await fc.assert(fc.asyncProperty(fc.array(arbMutation, { minLength: 1, maxLength: 4 }), async (muts) => void (await readOrPolicyError(mutate(valid, muts)))), { numRuns: 2000 });
  });

  it("does the same for mutations of the tar stream inside (checksums fixed up so the walk goes deep)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbMutation, { minLength: 1, maxLength: 4 }), fc.boolean(), async (muts, fix) => {
        const tar = mutate(validTar, muts);
        await readOrPolicyError(gzip(fix ? fixChecksums(tar) : tar));
      }),
      { numRuns: 3000 },
    );
  });

  it("does the same for generated entry lists with right and wrong manifests", async () => {
    const codes = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.array(arbEntry, { maxLength: 6 }), fc.oneof({ weight: 6, arbitrary: fc.constant(0) }, { weight: 5, arbitrary: fc.nat({ max: 5 }) }), fc.boolean(), async (entries, variant, manifestFirst) => {
        const body = entries.map(encode);
        const all = variant === 5 ? body : manifestFirst ? [manifestFor(entries, variant), ...body] : [...body, manifestFor(entries, variant)];
        const code = await readOrPolicyError(gzip(tarOf(all)));
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }),
      { numRuns: 5000 },
    );
    // The generator reaches the deep checks, not just the first one.
    expect([...codes.keys()]).toEqual(expect.arrayContaining([
      "ok", "BUNDLE_PATH_UNSAFE", "BUNDLE_LINK_FORBIDDEN", "BUNDLE_ENTRY_TYPE_FORBIDDEN", "BUNDLE_DUPLICATE_ENTRY", "BUNDLE_MANIFEST_INVALID",
      "BUNDLE_UNLISTED_FILE", "BUNDLE_FILE_MISSING", "BUNDLE_DIGEST_MISMATCH", "BUNDLE_HASH_MISMATCH", "BUNDLE_INCOMPATIBLE", "BUNDLE_TAR_INVALID",
    ]));
  });

  it("reads back exactly what a well-formed generated bundle holds", async () => {
    const arbFiles = fc.uniqueArray(
      fc.record({ name: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}\.cedar$/), content: fc.string({ maxLength: 200 }) }),
      { minLength: 1, maxLength: 6, selector: (f) => f.name.toLowerCase() },
    );
    await fc.assert(
      fc.asyncProperty(arbFiles, async (files) => {
        const m: BundleManifest = {
          name: "prop", policy_bundle_version: "1.0.0", required_runtime_version: "", bundle_hash: bundleHash(files),
          created_at: "2024-01-01T00:00:00Z", engine: "cedar", files: Object.fromEntries(files.map((f) => [f.name, sha256Digest(f.content)])),
        };
        const bytes = gzip(tarOf([tarEntry({ name: "manifest.json", data: serializeManifest(m) }), ...files.map((f) => tarEntry({ name: f.name, data: f.content }))]));
        const b = await readBundle(bytes);
        assertConsistent(bytes, b);
        expect(b.files).toEqual([...files].sort((x, y) => Buffer.compare(Buffer.from(x.name), Buffer.from(y.name))).map((f) => ({ name: f.name, text: f.content })));
      }),
      { numRuns: 300 },
    );
  });
});
