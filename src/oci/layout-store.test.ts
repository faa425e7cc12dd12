import { describe, expect, it, beforeEach } from "vitest";
import { mkdtemp, readFile, readdir, rm, symlink, writeFile, truncate } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LayoutRepository } from "./layout-store.js";
import { pushArtifact } from "./artifact.js";
import { listReferrers, readReferrerSources } from "./referrers.js";
import { attachFile } from "./attach.js";
import { copyArtifact } from "./copy.js";
import { pullArtifact } from "./pull.js";
import { MediaTypes } from "./types.js";
import { OciError } from "./errors.js";
import { sha256Digest } from "../lib/index.js";

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof OciError) return e.code;
    throw e;
  }
  return "NO_ERROR";
}

describe("LayoutRepository", () => {
  let dir: string;
  let repo: LayoutRepository;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "layout-"));
    repo = new LayoutRepository(join(dir, "store"));
  });

  it("stores blobs content-addressed and reads them back verified", async () => {
    const digest = await repo.putBlob(enc("hello"));
    expect(digest).toBe(sha256Digest("hello"));
    expect(await repo.hasBlob(digest)).toBe(true);
    expect(new TextDecoder().decode(await repo.getBlob(digest))).toBe("hello");
    expect(JSON.parse(await readFile(join(dir, "store", "oci-layout"), "utf8"))).toEqual({ imageLayoutVersion: "1.0.0" });
  });

  describe("when a blob on disk was tampered with", () => {
    it("refuses it with OCI_DIGEST_MISMATCH", async () => {
      const digest = await repo.putBlob(enc("original"));
      await writeFile(join(dir, "store", "blobs", "sha256", digest.slice(7)), "evil!!!!");
      expect(await codeOf(repo.getBlob(digest))).toBe("OCI_DIGEST_MISMATCH");
    });
    it("refuses a truncated blob with OCI_SIZE_MISMATCH when the size is known", async () => {
      const digest = await repo.putBlob(enc("0123456789"));
      await truncate(join(dir, "store", "blobs", "sha256", digest.slice(7)), 4);
      expect(await codeOf(repo.getBlob(digest, { expectedSize: 10 }))).toBe("OCI_SIZE_MISMATCH");
    });
  });

  describe("verifyBlob (streamed: the bytes are hashed, not kept)", () => {
    it("accepts an intact blob and refuses a tampered, truncated, longer or missing one with getBlob's codes", async () => {
      const digest = await repo.putBlob(enc("0123456789"));
      const path = join(dir, "store", "blobs", "sha256", digest.slice(7));
      await repo.verifyBlob(digest, { expectedSize: 10 });
      await writeFile(path, "0123456780");
      expect(await codeOf(repo.verifyBlob(digest, { expectedSize: 10 }))).toBe("OCI_DIGEST_MISMATCH");
      await writeFile(path, "0123");
      expect(await codeOf(repo.verifyBlob(digest, { expectedSize: 10 }))).toBe("OCI_SIZE_MISMATCH");
      await writeFile(path, "0123456789+");
      expect(await codeOf(repo.verifyBlob(digest, { expectedSize: 10 }))).toBe("OCI_SIZE_MISMATCH");
      expect(await codeOf(repo.verifyBlob(sha256Digest("absent")))).toBe("OCI_NOT_FOUND");
      expect(await codeOf(repo.verifyBlob("sha256:../../etc"))).toBe("OCI_REFERENCE_INVALID");
    });

    it("verifies a 96 MiB blob without holding it (array-buffer memory stays far below its size)", async () => {
      const big = Buffer.alloc(96 * 1024 * 1024, 7);
      const digest = await repo.putBlob(big);
      const before = process.memoryUsage().arrayBuffers;
      let peak = before;
      await repo.verifyBlob(digest, { expectedSize: 96 * 1024 * 1024, onProgress: () => void (peak = Math.max(peak, process.memoryUsage().arrayBuffers)) });
      // Reading it whole would add ≥ 96 MiB; streamed chunks only linger until the next GC.
      expect(peak - before).toBeLessThan(48 * 1024 * 1024);
    });
  });

  describe("streaming copy and pull (one chunk of memory per blob; nothing unverified committed)", () => {
    it("copies a 96 MiB layer layout to layout without holding it, byte for byte", async () => {
      const big = Buffer.alloc(96 * 1024 * 1024, 3);
      await pushArtifact(repo, [{ name: "model.bin", data: big }], { artifactType: "x/model", tag: "v1" });
      const dst = new LayoutRepository(join(dir, "dst"));
      const before = process.memoryUsage().arrayBuffers;
      let peak = before;
      const r = await copyArtifact(repo, "v1", dst, "v1", { onProgress: () => void (peak = Math.max(peak, process.memoryUsage().arrayBuffers)) });
      expect(r.bytes).toBeGreaterThanOrEqual(big.length);
      expect(peak - before).toBeLessThan(48 * 1024 * 1024); // buffering it would add ≥ 96 MiB
      await dst.verifyBlob(sha256Digest(big), { expectedSize: big.length });
    });

    it("a tampered source blob fails the copy and the pull with OCI_DIGEST_MISMATCH and leaves no file behind", async () => {
      const pushed = await pushArtifact(repo, [{ name: "a.txt", data: enc("genuine content") }], { artifactType: "x/y", tag: "v1" });
      const layer = sha256Digest("genuine content");
      await writeFile(join(dir, "store", "blobs", "sha256", layer.slice(7)), "forged! content");
      const dst = new LayoutRepository(join(dir, "dst"));
      expect(await codeOf(copyArtifact(repo, "v1", dst, "v1"))).toBe("OCI_DIGEST_MISMATCH");
      expect(await dst.hasBlob(layer)).toBe(false);
      const out = join(dir, "out");
      expect(await codeOf(pullArtifact(repo, pushed.digest, out))).toBe("OCI_DIGEST_MISMATCH");
      expect(await readdir(out).catch(() => [])).toEqual([]);
      expect(await readdir(join(dir, "dst", "blobs", "sha256")).then((names) => names.filter((n) => n.endsWith(".tmp"))).catch(() => [])).toEqual([]);
    });
  });

  it("tags manifests in index.json and moves a tag on re-push", async () => {
    const a = await pushArtifact(repo, [{ name: "a.txt", data: enc("a") }], { artifactType: "x/y", tag: "v1" });
    expect((await repo.resolve("v1")).digest).toBe(a.digest);
    const b = await pushArtifact(repo, [{ name: "b.txt", data: enc("b") }], { artifactType: "x/y", tag: "v1" });
    expect((await repo.resolve("v1")).digest).toBe(b.digest);
    expect(await repo.listTags()).toEqual(["v1"]);
    expect((await repo.getManifest(a.digest)).digest).toBe(a.digest);
  });

  it("answers the referrers query natively, filtered by artifactType", async () => {
    const subject = await pushArtifact(repo, [{ name: "agent", data: enc("agent") }], { artifactType: "x/agent", tag: "v1" });
    await attachFile(repo, subject.descriptor, { name: "autonomy.lock.json", data: enc("{}") }, { artifactType: MediaTypes.lock, subjectTag: "v1" });
    await attachFile(repo, subject.descriptor, { name: "bundle.tar.gz", data: enc("tgz") }, { artifactType: MediaTypes.policyBundle, subjectTag: "v1" });
    const all = await listReferrers(repo, subject.digest);
    expect(all.map((r) => r.artifactType).sort()).toEqual([MediaTypes.lock, MediaTypes.policyBundle].sort());
    expect(all.every((r) => r.source === "referrers-api")).toBe(true);
    expect((await listReferrers(repo, subject.digest, MediaTypes.lock)).length).toBe(1);
    // The layout has a referrers query, so no sidecar tags are needed.
    expect(await repo.listTags()).toEqual(["v1"]);
  });

  it("reports a missing tag as OCI_NOT_FOUND and a missing layout likewise", async () => {
    await pushArtifact(repo, [{ name: "a", data: enc("a") }], { artifactType: "x/y", tag: "v1" });
    expect(await codeOf(repo.resolve("nope"))).toBe("OCI_NOT_FOUND");
    expect(await codeOf(new LayoutRepository(join(dir, "absent")).resolve("v1"))).toBe("OCI_NOT_FOUND");
  });

  it("rejects a manifest with an unknown media type", async () => {
    const bytes = enc(JSON.stringify({ schemaVersion: 2, mediaType: "application/x-evil", config: {}, layers: [] }));
    expect(await codeOf(repo.putManifest(bytes, "application/x-evil"))).toBe("OCI_MEDIA_TYPE_UNKNOWN");
  });

  it("copies an artifact with its referrers between layouts, digests preserved, and pulls it", async () => {
    const subject = await pushArtifact(repo, [{ name: "agent.py", data: enc("print(1)") }], { artifactType: "x/agent", tag: "v1" });
    await attachFile(repo, subject.descriptor, { name: "l.json", data: enc("{}") }, { artifactType: MediaTypes.lock });
    const dst = new LayoutRepository(join(dir, "copy"));
    const r = await copyArtifact(repo, "v1", dst, "v1", { referrers: true });
    expect(r.digest).toBe(subject.digest);
    expect(r.referrers).toBe(1);
    expect((await dst.resolve("v1")).digest).toBe(subject.digest);
    expect((await listReferrers(dst, subject.digest, MediaTypes.lock)).length).toBe(1);
    const pulled = await pullArtifact(dst, "v1", join(dir, "out"));
    expect(pulled.files.map((f) => f.path)).toEqual([join(dir, "out", "agent.py")]);
    expect(await readFile(join(dir, "out", "agent.py"), "utf8")).toBe("print(1)");
  });

  describe("an air-gapped copy someone else can write to", () => {
    const hex = (c: string): string => c.repeat(64);
    const blobFile = (h: string): string => join(dir, "store", "blobs", "sha256", h);
    /** Lists `sha256:<h>` in index.json as an untagged manifest declaring `size` bytes. */
    const listManifest = async (h: string, size: number): Promise<void> => {
      const path = join(dir, "store", "index.json");
      const idx = JSON.parse(await readFile(path, "utf8")) as { manifests: unknown[] };
      idx.manifests.unshift({ mediaType: MediaTypes.imageManifest, digest: `sha256:${h}`, size });
      await writeFile(path, JSON.stringify(idx));
    };
    let subject: string;
    beforeEach(async () => {
      const a = await pushArtifact(repo, [{ name: "a.txt", data: enc("A") }], { artifactType: "application/x-test", tag: "v1" });
      subject = a.digest;
      await attachFile(repo, a.descriptor, { name: "lock.json", data: enc("{}") }, { artifactType: MediaTypes.lock });
    });

    it("attack FIFO blob: a FIFO at a listed manifest's blob path is refused at once (not a regular file), not read for ever; the other referrers are still listed", async () => {
      execFileSync("mkfifo", [blobFile(hex("a"))]);
      await listManifest(hex("a"), 100);
      const outcome = await Promise.race([readReferrerSources(repo, subject), new Promise((r) => setTimeout(() => r("HUNG"), 5000))]);
      expect(outcome).not.toBe("HUNG");
      const { found, problems } = outcome as Awaited<ReturnType<typeof readReferrerSources>>;
      expect(found.map((f) => f.artifactType)).toEqual([MediaTypes.lock]);
      expect(problems).toEqual([{ source: "referrers-api", reason: expect.stringMatching(/^sha256:a+: index\.json entry skipped: OCI_LAYOUT_INVALID: .* not a regular file/) as unknown }]);
      expect(await codeOf(repo.getBlob(`sha256:${hex("a")}`, { expectedSize: 100 }))).toBe("OCI_LAYOUT_INVALID");
    });

    it("attack symlink to /dev/zero: a blob path that is a symbolic link is refused without being followed", async () => {
      await symlink("/dev/zero", blobFile(hex("b")));
      await listManifest(hex("b"), 100);
      expect(await codeOf(repo.getBlob(`sha256:${hex("b")}`))).toBe("OCI_LAYOUT_INVALID");
      expect((await readReferrerSources(repo, subject)).found).toHaveLength(1);
    });

    it("attack oversized file: a listed manifest declaring 100 bytes whose file is 256 MiB is refused by its size before a byte is read", async () => {
      await writeFile(blobFile(hex("c")), "");
      await truncate(blobFile(hex("c")), 256 * 1024 * 1024);
      await listManifest(hex("c"), 100);
      const before = process.memoryUsage().arrayBuffers;
      const { found, problems } = await readReferrerSources(repo, subject);
      expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(32 * 1024 * 1024);
      expect(found).toHaveLength(1);
      expect(problems[0]?.reason).toMatch(/OCI_SIZE_MISMATCH: .* is 268435456 bytes, expected 100/);
    });

    it("attack FIFO index.json: a FIFO in place of index.json is refused at once (OCI_LAYOUT_INVALID), not read for ever", async () => {
      const path = join(dir, "store", "index.json");
      await rm(path);
      execFileSync("mkfifo", [path]);
      const outcome = await Promise.race([codeOf(repo.resolve("v1")), new Promise((r) => setTimeout(() => r("HUNG"), 5000))]);
      expect(outcome).toBe("OCI_LAYOUT_INVALID");
    });

    it("attack one bad index.json entry: a listed manifest that is junk, or missing, is skipped on its own with a reason; the genuine referrers stay listed", async () => {
      const junk = enc("not a manifest at all");
      await listManifest((await repo.putBlob(junk)).slice(7), junk.byteLength);
      await listManifest(hex("d"), 10);
      const { found, problems, truncated } = await readReferrerSources(repo, subject);
      expect(found.map((f) => f.artifactType)).toEqual([MediaTypes.lock]);
      expect(problems.map((p) => p.reason)).toEqual([expect.stringMatching(/OCI_NOT_FOUND/), expect.stringMatching(/OCI_MANIFEST_INVALID/)]);
      expect(truncated).toBe(false);
    });
  });
});
