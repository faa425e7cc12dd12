/**
 * Issue 9, "endless data" (TUF): what `runtime activate` writes into the
 * node's own release store. Only the verified release goes in — the image,
 * the chosen statement's envelope, the lock and bundle it names — under a
 * byte budget; unsigned referrers of any size and number never do.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activateRelease } from "../../src/runtime/index.js";
import { releaseStorePath, setTrustRoot } from "../../src/node/index.js";
import { EMPTY_JSON, LayoutRepository, MediaTypes, attachFile, encodeManifest, parseReference, pushReferrer, readReferrerSources } from "../../src/oci/index.js";
import type { Descriptor, ImageManifest } from "../../src/oci/index.js";
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

  /** A signed release, a trusting node, and an attacker (push rights, no key) who can list a statement referrer first. */
  const attackerSetup = async () => {
    const keys = testKeys();
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, repository: "registry.example/prod/agent" });
    const stateRoot = join(dir, "node");
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: "registry.example/prod/agent" });
    const genuine = JSON.parse(new TextDecoder().decode(await rel.repo.getBlob(rel.signed.statement.envelope))) as { payloadType: string; payload: string };
    const forged = new TextEncoder().encode(JSON.stringify({ payloadType: genuine.payloadType, payload: genuine.payload, signatures: [{ keyid: "attacker", sig: Buffer.alloc(64, 7).toString("base64") }] }));
    const forgedLayer: Descriptor = { mediaType: MediaTypes.dsseEnvelope, digest: await rel.repo.putBlob(forged), size: forged.byteLength };
    const image = await rel.repo.resolve(rel.digest);
    const pushFirst = async (layers: Descriptor[]): Promise<void> => {
      const config = { mediaType: MediaTypes.empty, digest: await rel.repo.putBlob(EMPTY_JSON), size: EMPTY_JSON.byteLength };
      const m: ImageManifest = { schemaVersion: 2, mediaType: MediaTypes.imageManifest, artifactType: MediaTypes.releaseStatement, config, layers, subject: image };
      const d = (await pushReferrer(rel.repo, encodeManifest(m).bytes, m.mediaType)).digest;
      const path = join(dir, "reg", "index.json");
      const idx = JSON.parse(await readFile(path, "utf8")) as { manifests: { digest: string }[] };
      idx.manifests.sort((a, b) => (a.digest === d ? -1 : b.digest === d ? 1 : 0));
      await writeFile(path, JSON.stringify(idx));
    };
    const activate = async () => {
      const r = await activateRelease({ ref: parseReference(`oci:${dir}/reg:v1`), stateRoot });
      return { r, store: new LayoutRepository(releaseStorePath(stateRoot)) };
    };
    return { rel, forgedLayer, pushFirst, activate };
  };

  it("attack forged envelope in store: a referrer listed first with the genuine payload and a junk signature is never what the node stores; the verified envelope is", async () => {
    const { rel, forgedLayer, pushFirst, activate } = await attackerSetup();
    await pushFirst([forgedLayer]);
    const { r, store } = await activate();
    expect(r.activation.sequence).toBe(1);
    expect(await store.hasBlob(forgedLayer.digest)).toBe(false);
    expect(await store.hasBlob(rel.signed.statement.envelope)).toBe(true);
  });

  it("attack endless data (store): one referrer with 32 junk DSSE layers listed first does not leave the node's store without the statement's envelope", async () => {
    const { rel, forgedLayer, pushFirst, activate } = await attackerSetup();
    const junk = await Promise.all(Array.from({ length: 31 }, async (_, i) => { const b = new TextEncoder().encode(`junk ${i}`); return { mediaType: MediaTypes.dsseEnvelope, digest: await rel.repo.putBlob(b), size: b.byteLength }; }));
    await pushFirst([forgedLayer, ...junk]);
    const { r, store } = await activate();
    expect(r.activation.sequence).toBe(1);
    expect(await store.hasBlob(forgedLayer.digest)).toBe(false);
    expect(await store.hasBlob(rel.signed.statement.envelope)).toBe(true);
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
