/**
 * Issue 9, "endless data" (TUF): what `runtime activate` writes into the
 * node's own release store. Only the verified release goes in — the image,
 * the chosen statement's envelope, the lock and bundle it names — under a
 * byte budget; unsigned referrers of any size and number never do.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activateRelease } from "../../src/runtime/index.js";
import { releaseStorePath, setTrustRoot } from "../../src/node/index.js";
import { LayoutRepository, MediaTypes, attachFile, parseReference, readReferrerSources } from "../../src/oci/index.js";
import { sha256Digest } from "../../src/lib/index.js";
import { makeRelease, testKeys } from "../helpers/release.js";

/** Total bytes under a directory. */
async function du(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) n += (await stat(join(e.parentPath, e.name))).size;
  return n;
}

describe("the node's release store keeps only the verified release", () => {
  let dir: string;
  beforeEach(async () => { dir = await mkdtemp(join(tmpdir(), "act-store-")); });
  afterEach(async () => { await rm(dir, { recursive: true, force: true }); });

  it("attack endless data: 3 junk referrers of 16 MiB (one a referrer of a referrer) pushed beside a release never reach the node's store", async () => {
    const keys = testKeys();
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, repository: "registry.example/prod/agent" });
    const stateRoot = join(dir, "node");
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: "registry.example/prod/agent" });
    const image = await rel.repo.resolve(rel.digest);
    const junk: string[] = [];
    let last = image;
    for (let i = 0; i < 3; i++) {
      const data = Buffer.alloc(16 * 1024 * 1024, i + 1);
      junk.push(sha256Digest(data));
      const p = await attachFile(rel.repo, i === 2 ? last : image, { name: `junk${i}.bin`, data }, { artifactType: "application/x-junk" });
      last = p.descriptor;
    }
    const r = await activateRelease({ ref: parseReference(`oci:${dir}/reg:v1`), stateRoot });
    expect(r.activation.sequence).toBe(1);
    const store = new LayoutRepository(releaseStorePath(stateRoot));
    for (const d of junk) expect(await store.hasBlob(d)).toBe(false);
    expect(await du(releaseStorePath(stateRoot))).toBeLessThan(1024 * 1024);
    // What is there is the verified release: the image, the named lock and bundle, the statement's envelope.
    expect(await store.hasBlob(sha256Digest(rel.lockBytes))).toBe(true);
    expect(await store.hasBlob(rel.bundleDigest)).toBe(true);
    expect(await store.hasBlob(rel.signed.statement.envelope)).toBe(true);
    const { found } = await readReferrerSources(store, rel.digest);
    expect(found.map((f) => f.artifactType).sort()).toEqual([MediaTypes.lock, MediaTypes.policyBundle, MediaTypes.releaseStatement].sort());
  });

  it("attack endless data: a release larger than the store budget is refused before anything is copied (ACTIVATION_TOO_LARGE)", async () => {
    const keys = testKeys();
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, repository: "registry.example/prod/agent" });
    const stateRoot = join(dir, "node");
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: "registry.example/prod/agent" });
    const e = await activateRelease({ ref: parseReference(`oci:${dir}/reg:v1`), stateRoot, storeBudgetBytes: 100 }).catch((x: unknown) => x);
    expect((e as { code?: string }).code).toBe("ACTIVATION_TOO_LARGE");
    expect(await new LayoutRepository(releaseStorePath(stateRoot)).hasBlob(sha256Digest(rel.lockBytes))).toBe(false);
  });
});
