/**
 * Release relay (issue 11, item 4 and the Trust bullet's "relayed release"
 * half): a node packs its active release into a segment; a peer verifies and
 * activates it under its own trust root, exactly as it would a registry pull.
 * Every refusal here is compared with the same content activated from an OCI
 * layout (the registry path), code and exit code.
 */
import { describe, expect, it, beforeEach } from "vitest";
import { mkdir, mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { gzipSync } from "node:zlib";
import { activateRelayedRelease, packActiveRelease, relayedReleaseLimits, watchActiveRelease } from "../../src/edge/index.js";
import type { PackedRelease } from "../../src/edge/index.js";
import { activateRelease } from "../../src/runtime/index.js";
import { readNodeState, releaseStorePath, setTrustRoot, stateRootPaths } from "../../src/node/index.js";
import { LayoutRepository, MediaTypes, listReferrers, parseManifest, parseReference } from "../../src/oci/index.js";
import { readTarGz, tarGz } from "../../src/archive/index.js";
import type { ArchiveEntry } from "../../src/archive/index.js";
import { sha256Digest } from "../../src/lib/index.js";
import { makeRelease, testKeys } from "../helpers/release.js";
import type { MadeRelease, TestKeys } from "../helpers/release.js";
import { codeOf } from "../helpers/caught.js";
import { paxEntry, tarEntry, tgz } from "../helpers/raw-tar.js";

/** The signed identity every node here follows (a relayed layout's location is never it). */
const REPOSITORY = "registry.example/prod/agent";
const READ_LIMITS = relayedReleaseLimits(64 * 1024 * 1024);

describe("release relay: pack the active release, activate it on a peer", () => {
  let dir: string;
  let keys: TestKeys;
  let n = 0;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "release-relay-"));
    keys = testKeys();
  });

  /** A fresh node trusting `keys` (or others) for REPOSITORY. */
  async function node(trusting: TestKeys = keys): Promise<string> {
    n += 1;
    const root = join(dir, `node-${n}`);
    await setTrustRoot(root, { keys: [trusting.publicPem], repository: REPOSITORY });
    return root;
  }
  const release = (tag: string, sequence: number, agentText = `agent ${tag}`, bundleVersion = "1.0.0"): Promise<MadeRelease> =>
    makeRelease({ ref: `oci:${join(dir, "reg")}:${tag}`, keys, sequence, repository: REPOSITORY, agentText, bundleVersion });

  /** A node that activated `rel` from the registry (an OCI layout), and its packed active release. */
  async function seeded(rel: MadeRelease): Promise<{ root: string; bytes: Buffer; tag: string }> {
    const root = await node();
    await activateRelease({ ref: rel.ref, stateRoot: root });
    const packed = await packActiveRelease(root);
    if (packed === undefined) throw new Error("nothing active after activation");
    return { root, bytes: packed.bytes, tag: packed.tag };
  }

  /** The same files written as an OCI layout directory, activated as a registry pull would be. */
  async function activateAsLayout(files: ArchiveEntry[], tag: string, root: string): Promise<string> {
    const out = join(dir, `layout-${(n += 1)}`);
    for (const f of files) {
      await mkdir(dirname(join(out, f.name)), { recursive: true });
      await writeFile(join(out, f.name), f.data);
    }
    return codeOf(activateRelease({ ref: parseReference(`oci:${out}:${tag}`), stateRoot: root }));
  }

  const incomingLeft = async (root: string): Promise<string[]> => readdir(stateRootPaths(root).edgeIncoming).catch(() => []);

  it("a peer that never saw the registry activates the relayed release: same statement, sequence and policy; scratch removed", async () => {
    const rel = await release("v1", 1);
    const a = await seeded(rel);
    const b = await node();
    const r = await activateRelayedRelease({ stateRoot: b, bytes: a.bytes });
    expect(r.changed).toBe(true);
    const [sa, sb] = [await readNodeState(a.root), await readNodeState(b)];
    expect(sb.activation).toMatchObject({ statement_digest: rel.signed.statement.digest, sequence: 1, image_digest: rel.digest, policy_digest: rel.bundleDigest });
    expect(sb.current?.digest).toBe(sa.current?.digest);
    expect(sb.highest_sequence).toBe(1);
    expect(await incomingLeft(b)).toEqual([]);
    // The peer's own store now holds it: it can relay it on, and packs the very same bytes (peers dedupe by segment id).
    expect((await packActiveRelease(b))?.bytes.equals(a.bytes)).toBe(true);
  });

  it("packing is deterministic and carries only the active release (one statement, its lock and bundle)", async () => {
    // Two releases of the SAME image: the node's store holds two statements for it; only the active one is packed.
    // (v2 is signed only after v1 is active: verification picks the highest statement the registry holds for an image.)
    const root = await node();
    const v1 = await release("v1", 1, "same agent", "1.0.0");
    await activateRelease({ ref: v1.ref, stateRoot: root });
    const v2 = await release("v2", 2, "same agent", "2.0.0");
    expect(v2.digest).toBe(v1.digest);
    await activateRelease({ ref: v2.ref, stateRoot: root });
    expect((await listReferrers(new LayoutRepository(releaseStorePath(root)), v2.digest)).filter((r) => r.artifactType === MediaTypes.releaseStatement)).toHaveLength(2);
    const one = await packActiveRelease(root);
    const two = await packActiveRelease(root);
    expect(one && two && one.bytes.equals(two.bytes)).toBe(true);
    expect(one).toMatchObject({ statementDigest: v2.signed.statement.digest, sequence: 2, tag: "seq-2" });
    const files = await readTarGz(one?.bytes ?? Buffer.alloc(0), { limits: READ_LIMITS });
    const index = parseManifest(files.find((f) => f.name === "index.json")?.data ?? Buffer.alloc(0));
    if (index.kind !== "index") throw new Error("index.json is not an index");
    const types = index.value.manifests.map((d) => d.artifactType ?? "(none)").sort();
    expect(types).toEqual(["application/vnd.autonomyops.agent.v1", MediaTypes.lock, MediaTypes.releaseStatement, MediaTypes.policyBundle].sort());
    const blobNames = files.filter((f) => f.name.startsWith("blobs/")).map((f) => f.name);
    expect(blobNames).toContain(`blobs/sha256/${v2.bundleDigest.slice(7)}`);
    expect(blobNames).not.toContain(`blobs/sha256/${v1.bundleDigest.slice(7)}`);
    for (const f of files.filter((x) => x.name.startsWith("blobs/"))) expect(sha256Digest(f.data)).toBe(`sha256:${f.name.slice(13)}`);
    expect(await packActiveRelease(await node())).toBeUndefined();
  });

  it("a release store corrupted on disk is not relayed: packing re-reads every blob against its digest", async () => {
    const rel = await release("v1", 1);
    const a = await seeded(rel);
    await writeFile(join(releaseStorePath(a.root), "blobs", "sha256", rel.bundleDigest.slice(7)), "altered at rest");
    expect(await codeOf(packActiveRelease(a.root))).toMatch(/^OCI_(DIGEST|SIZE)_MISMATCH\//);
  });

  it("a release larger than max_segment_bytes is refused (SEGMENT_TOO_LARGE) before its blobs are read", async () => {
    const rel = await release("v1", 1);
    const a = await seeded(rel);
    const full = await packActiveRelease(a.root);
    expect(await codeOf(packActiveRelease(a.root, { maxBytes: (full?.bytes.length ?? 0) - 1 }))).toBe("SEGMENT_TOO_LARGE/1");
    // The bundle is altered on disk: had packing read it, the digest check would answer instead.
    await writeFile(join(releaseStorePath(a.root), "blobs", "sha256", rel.bundleDigest.slice(7)), "altered at rest");
    expect(await codeOf(packActiveRelease(a.root, { maxBytes: 64 }))).toBe("SEGMENT_TOO_LARGE/1");
  });

  it("re-activating the same relayed release is a no-op (idempotent)", async () => {
    const a = await seeded(await release("v1", 1));
    const b = await node();
    await activateRelayedRelease({ stateRoot: b, bytes: a.bytes });
    const before = await readNodeState(b);
    const again = await activateRelayedRelease({ stateRoot: b, bytes: a.bytes });
    expect(again.changed).toBe(false);
    expect((await readNodeState(b)).activation).toEqual(before.activation);
    expect(await incomingLeft(b)).toEqual([]);
  });

  it("the same segment arriving twice at once (two peers relaying it) activates once; both calls succeed", async () => {
    const a = await seeded(await release("v1", 1));
    const b = await node();
    const results = await Promise.all([activateRelayedRelease({ stateRoot: b, bytes: a.bytes }), activateRelayedRelease({ stateRoot: b, bytes: a.bytes })]);
    expect(results.map((r) => r.changed).sort()).toEqual([false, true]);
    expect((await readNodeState(b)).activation?.sequence).toBe(1);
    expect(await incomingLeft(b)).toEqual([]);
  });

  it("trust: a relayed release past its expiry on the peer's clock is refused as from the registry", async () => {
    const rel = await release("v1", 1);
    const a = await seeded(rel);
    const later = { now: () => Date.now() + 400 * 24 * 3600 * 1000 };
    const b = await node();
    const relayed = await codeOf(activateRelayedRelease({ stateRoot: b, bytes: a.bytes, clock: later }));
    expect(relayed).toBe(await codeOf(activateRelease({ ref: rel.ref, stateRoot: await node(), clock: later })));
    expect(relayed).toMatch(/\/4$/);
    expect((await readNodeState(b)).activation).toBeUndefined();
  });

  it("relay_activated_release: the watcher hands each newly active release over once, and retries a failed hand-over", async () => {
    const root = await node();
    const handed: PackedRelease[] = [];
    let failNext = false;
    const watch = watchActiveRelease({
      stateRoot: root, intervalMs: 3_600_000,
      onRelease: async (p) => {
        if (failNext) {
          failNext = false;
          throw new Error("peer store full");
        }
        handed.push(p);
        return Promise.resolve();
      },
    });
    try {
      expect(await watch.check()).toBeUndefined();
      const v1 = await release("v1", 1, "one");
      await activateRelease({ ref: v1.ref, stateRoot: root });
      expect(await watch.check()).toBe(v1.signed.statement.digest);
      expect(await watch.check()).toBe(v1.signed.statement.digest);
      expect(handed.map((p) => p.sequence)).toEqual([1]);
      const v2 = await release("v2", 2, "two");
      await activateRelease({ ref: v2.ref, stateRoot: root });
      failNext = true;
      await expect(watch.check()).rejects.toThrow(/peer store full/);
      expect(await watch.check()).toBe(v2.signed.statement.digest);
      expect(handed.map((p) => p.sequence)).toEqual([1, 2]);
      expect(handed[1]?.bytes.equals((await packActiveRelease(root))?.bytes ?? Buffer.alloc(0))).toBe(true);
    } finally {
      await watch.stop();
    }
  });

  describe("trust: a relayed release with a tampered byte is refused exactly as a registry pull would be", () => {
    /** The archive's files with one byte of `pick`'s file flipped. */
    const tamper = (files: ArchiveEntry[], name: string): ArchiveEntry[] =>
      files.map((f) => {
        if (f.name !== name) return f;
        const data = Buffer.from(f.data);
        data[data.length >> 1] = (data[data.length >> 1] ?? 0) ^ 0x01;
        return { ...f, data };
      });

    for (const target of ["lock", "bundle", "layer", "envelope"] as const) {
      it(`one flipped byte in the ${target}: the same code and exit 4 as from an OCI layout, and nothing activated`, async () => {
        const rel = await release("v1", 1);
        const a = await seeded(rel);
        const files = await readTarGz(a.bytes, { limits: READ_LIMITS });
        const name = `blobs/sha256/${(await blobOf(target, rel, files)).slice(7)}`;
        const bad = tamper(files, name);
        const b = await node();
        const relayed = await codeOf(activateRelayedRelease({ stateRoot: b, bytes: tarGz(bad.map((f) => ({ name: f.name, content: f.data }))).gz }));
        const registry = await activateAsLayout(bad, a.tag, await node());
        expect(relayed).toBe(registry);
        expect(relayed).toMatch(/\/4$/);
        expect(relayed).not.toMatch(/^RELAYED_RELEASE_INVALID/);
        expect((await readNodeState(b)).activation).toBeUndefined();
        expect(await incomingLeft(b)).toEqual([]);
      });
    }

    it("a peer trusting other keys refuses it as it would refuse the registry's copy", async () => {
      const rel = await release("v1", 1);
      const a = await seeded(rel);
      const stranger = testKeys();
      const b = await node(stranger);
      const relayed = await codeOf(activateRelayedRelease({ stateRoot: b, bytes: a.bytes }));
      expect(relayed).toBe(await codeOf(activateRelease({ ref: rel.ref, stateRoot: await node(stranger) })));
      expect(relayed).toBe("STATEMENT_MISSING/4");
      expect((await readNodeState(b)).activation).toBeUndefined();
    });
  });

  describe("trust: a relayed stale statement is refused", () => {
    it("a lower sequence than the peer's floor: ACTIVATION_ROLLBACK_REFUSED, as from the registry", async () => {
      const v2 = await release("v2", 2, "two");
      const v3 = await release("v3", 3, "three");
      const a = await seeded(v2);
      const b = await node();
      await activateRelease({ ref: v3.ref, stateRoot: b });
      const before = await readNodeState(b);
      expect(await codeOf(activateRelayedRelease({ stateRoot: b, bytes: a.bytes }))).toBe("ACTIVATION_ROLLBACK_REFUSED/4");
      expect(await codeOf(activateRelease({ ref: v2.ref, stateRoot: b }))).toBe("ACTIVATION_ROLLBACK_REFUSED/4");
      expect((await readNodeState(b)).activation).toEqual(before.activation);
      expect(await incomingLeft(b)).toEqual([]);
    });

    it("the same sequence with a different statement: ACTIVATION_EQUIVOCATION, recorded on the peer", async () => {
      const mine = await makeRelease({ ref: `oci:${join(dir, "reg-b")}:x`, keys, sequence: 2, repository: REPOSITORY, agentText: "b's release" });
      const theirs = await release("y", 2, "a's release");
      const a = await seeded(theirs);
      const b = await node();
      await activateRelease({ ref: mine.ref, stateRoot: b });
      expect(await codeOf(activateRelayedRelease({ stateRoot: b, bytes: a.bytes }))).toBe("ACTIVATION_EQUIVOCATION/4");
      const state = await readNodeState(b);
      expect(state.activation?.statement_digest).toBe(mine.signed.statement.digest);
      expect(state.equivocations).toEqual([expect.objectContaining({ sequence: 2, recorded: mine.signed.statement.digest, offered: theirs.signed.statement.digest })]);
    });
  });

  describe("hostile archives are refused before anything is written (RELAYED_RELEASE_INVALID, exit 4)", () => {
    const hex = "a".repeat(64);
    const taggedIndex = () => tarEntry({ name: "index.json", data: JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests: [{ mediaType: MediaTypes.imageManifest, digest: `sha256:${hex}`, size: 2, annotations: { "org.opencontainers.image.ref.name": "seq-1" } }] }) });
    const cases: [string, () => Buffer][] = [
      ["path traversal (../)", () => tgz([tarEntry({ name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' }), tarEntry({ name: "../../escaped", data: "x" })])],
      ["an absolute path", () => tgz([tarEntry({ name: "/tmp/escaped", data: "x" })])],
      ["a symlink", () => tgz([tarEntry({ name: `blobs/sha256/${hex}`, type: "2", linkname: "/etc/passwd" })])],
      ["a hard link", () => tgz([tarEntry({ name: `blobs/sha256/${hex}`, type: "1", linkname: "index.json" })])],
      ["a character device", () => tgz([tarEntry({ name: `blobs/sha256/${hex}`, type: "3" })])],
      ["an entry declaring 10 GB", () => tgz([paxEntry({ size: String(10 * 1000 ** 3) }), tarEntry({ name: `blobs/sha256/${hex}`, data: "x" })])],
      ["garbage", () => Buffer.from("this is not an archive at all, just bytes on the wire")],
      ["a file outside the OCI layout", () => tgz([tarEntry({ name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' }), taggedIndex(), tarEntry({ name: "run.sh", data: "#!/bin/sh\n" })])],
      ["a layout marker of another version", () => tgz([tarEntry({ name: "oci-layout", data: '{"imageLayoutVersion":"9.9.9"}' }), taggedIndex()])],
      ["a layout without a tagged image", () => tgz([tarEntry({ name: "oci-layout", data: '{"imageLayoutVersion":"1.0.0"}' }), tarEntry({ name: "index.json", data: JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests: [] }) })])],
    ];
    for (const [what, make] of cases) {
      it(`${what}`, async () => {
        const b = await node();
        expect(await codeOf(activateRelayedRelease({ stateRoot: b, bytes: make() }))).toBe("RELAYED_RELEASE_INVALID/4");
        expect((await readNodeState(b)).activation).toBeUndefined();
        expect(await incomingLeft(b)).toEqual([]);
      });
    }

    it("a truncated release", async () => {
      const a = await seeded(await release("v1", 1));
      const b = await node();
      expect(await codeOf(activateRelayedRelease({ stateRoot: b, bytes: a.bytes.subarray(0, a.bytes.length >> 1) }))).toBe("RELAYED_RELEASE_INVALID/4");
      expect((await readNodeState(b)).activation).toBeUndefined();
    });

    it("a gzip bomb is stopped at the limit (4 x max_segment_bytes expanded)", async () => {
      const maxBytes = 1024 * 1024;
      const zeros = Buffer.alloc(4 * maxBytes + 4096);
      const bomb = gzipSync(Buffer.concat([tarEntry({ name: `blobs/sha256/${hex}`, data: zeros })]), { level: 9 });
      expect(bomb.length).toBeLessThan(maxBytes);
      const b = await node();
      const err = await activateRelayedRelease({ stateRoot: b, bytes: bomb, maxBytes }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "RELAYED_RELEASE_INVALID", details: { archive_code: "ARCHIVE_TOO_LARGE" } });
      expect(await incomingLeft(b)).toEqual([]);
    });
  });
});

/** The digest of the blob `target` names in a packed release. */
async function blobOf(target: "lock" | "bundle" | "layer" | "envelope", rel: MadeRelease, files: ArchiveEntry[]): Promise<string> {
  if (target === "lock") return sha256Digest(rel.lockBytes);
  if (target === "bundle") return rel.bundleDigest;
  const manifestOf = (digest: string) => {
    const f = files.find((x) => x.name === `blobs/sha256/${digest.slice(7)}`);
    if (!f) throw new Error(`no blob ${digest}`);
    return parseManifest(f.data);
  };
  if (target === "layer") {
    const image = manifestOf(rel.digest);
    if (image.kind !== "manifest" || image.value.layers[0] === undefined) throw new Error("image has no layer");
    return image.value.layers[0].digest;
  }
  for (const f of files) {
    if (!f.name.startsWith("blobs/")) continue;
    const m = (() => { try { return parseManifest(f.data); } catch { return undefined; } })();
    if (m?.kind === "manifest" && m.value.artifactType === MediaTypes.releaseStatement && m.value.layers[0]) return m.value.layers[0].digest;
  }
  return Promise.reject(new Error("no statement referrer in the archive"));
}
