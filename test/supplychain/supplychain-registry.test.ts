/**
 * The whole release, CLI process by CLI process, over the real Debian
 * docker-registry 2.8.2 on loopback: keys → image → lock → attach lock and
 * bundle → sign → verify. Distribution 2.8 has no referrers API, so this runs
 * the fallback path end to end: the `sha256-<hex>` referrers-tag index, the
 * `<tag>-lock` / `<tag>-policy` sidecar tags and cosign's `sha256-<hex>.sig`
 * tag, checked with plain HTTP against the registry rather than with our client.
 * Then every way verification must refuse (exit 4, a stable code, no stack).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeRun, runJson } from "../helpers/cli.js";
import type { CliJson, JsonRunResult } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";
import { freePort, startRegistry } from "../helpers/registry.js";
import type { StartedRegistry } from "../helpers/registry.js";

const LOCK_TYPE = "application/vnd.autonomyops.lock.v1+json";
const BUNDLE_TYPE = "application/vnd.autonomyops.policy-bundle.v1+tar";
const COSIGN_SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

interface PushJson {
  digest: string;
  layers: { digest: string; size: number }[];
}

interface VerifyJson {
  ok: boolean;
  artifact: { digest: string; signature: { source: string } };
  steps: { step: string; ok: boolean; detail: string }[];
  lock?: { manifest: string; signature: { source: string } };
  policy?: { manifest: string; signature: { source: string } };
}

// One registry for the whole file, started in the file-level beforeAll.
const withRegistry = needs("docker-registry");

let registry: StartedRegistry;
let dir: string;
let key: { priv: string; pub: string };
let otherKey: { pub: string };
let repoCounter = 0;

/** `autonomy ARGS --json`, insisting on exit 0 and `ok: true`. */
async function autonomy<T>(args: string[]): Promise<T> {
  const r = await runJson<T & { ok?: boolean }>(args);
  expect(r.code, `autonomy ${args.join(" ")}\n${describeRun(r)}`).toBe(0);
  expect(r.json.ok).toBe(true);
  return r.json;
}

/** Asserts the CLI refused the way DESIGN §6 says: this exit code and error code, one error line, one hint line, no stack. */
function expectRefusal(r: JsonRunResult<CliJson>, exitCode: number, code: string): void {
  expect({ exit: r.code, code: r.json.code }, describeRun(r)).toEqual({ exit: exitCode, code });
  expect(r.json.ok).toBe(false);
  expect(r.stderr).toMatch(/^error: .+\nhint: .+\n$/);
  expect(r.stderr).not.toMatch(/^ {4}at /m);
  expect(r.stdout).not.toMatch(/^ {4}at /m);
}

/** A fresh repository name and an image in it whose layer no other test shares (blobs are global on the registry's disk). */
async function pushUniqueImage(): Promise<{ repo: string; ref: string; image: PushJson }> {
  const repo = `release/agent-${++repoCounter}`;
  const file = join(dir, `agent-${repoCounter}.py`);
  await writeFile(file, `# build ${randomBytes(16).toString("hex")}\nprint("edge agent")\n`);
  const ref = `${registry.host}/${repo}:v1`;
  const image = await autonomy<PushJson>(["oci", "push", ref, file, "--image", "--plain-http"]);
  return { repo, ref, image };
}

/** A policy bundle file with unique content. */
async function writeBundle(name: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, randomBytes(512));
  return path;
}

async function createLock(repo: string, digest: string, bundle: string, name: string): Promise<string> {
  const path = join(dir, name);
  await autonomy(["lock", "create", "--agent-image", `${registry.host}/${repo}@${digest}`, "--policy-bundle", bundle, "-o", path]);
  return path;
}

/** GET against the registry with plain fetch: an independent view of what is stored. */
async function registryGet(path: string, accept?: string): Promise<Response> {
  return fetch(`http://${registry.host}${path}`, accept === undefined ? {} : { headers: { accept } });
}

async function tagsOf(repo: string): Promise<string[]> {
  const res = await registryGet(`/v2/${repo}/tags/list`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { tags: string[] }).tags;
}

async function manifestDigestAt(repo: string, tag: string): Promise<string | null> {
  const res = await registryGet(`/v2/${repo}/manifests/${tag}`, `${OCI_MANIFEST}, ${OCI_INDEX}`);
  await res.body?.cancel();
  expect(res.status).toBe(200);
  return res.headers.get("docker-content-digest");
}


beforeAll(async () => {
  withRegistry.check();
  registry = await startRegistry();
  dir = await mkdtemp(join(tmpdir(), "autonomy-supplychain-registry-"));
  const release = join(dir, "keys", "release");
  const other = join(dir, "keys", "other");
  await autonomy(["keys", "generate", "--out", release]);
  await autonomy(["keys", "generate", "--out", other]);
  key = { priv: `${release}.key`, pub: `${release}.pub` };
  otherKey = { pub: `${other}.pub` };
});

afterAll(async () => {
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

withRegistry.describe("a full release over a registry without the referrers API", () => {
  it("pushes, locks, attaches, signs and verifies with every step ok, via the fallback tags", async () => {
    const { repo, ref, image } = await pushUniqueImage();
    const bundle = await writeBundle("bundle-full.tar.gz");
    const lock = await createLock(repo, image.digest, bundle, "lock-full.json");
    const lockAttached = await autonomy<{ subject: string; digest: string; artifactType: string }>(["oci", "attach", ref, lock, "--artifact-type", LOCK_TYPE, "--plain-http"]);
    const bundleAttached = await autonomy<{ subject: string; digest: string }>(["oci", "attach", ref, bundle, "--artifact-type", BUNDLE_TYPE, "--plain-http"]);
    expect(lockAttached).toMatchObject({ subject: image.digest, artifactType: LOCK_TYPE });
    expect(bundleAttached.subject).toBe(image.digest);

    const signed = await autonomy<{ signed: { what: string; subject: string; signature: string }[] }>(["sign", ref, "--key", key.priv, "--plain-http"]);
    expect(signed.signed.map((s) => [s.what, s.subject])).toEqual([
      ["artifact", image.digest],
      ["lock", lockAttached.digest],
      ["policy bundle", bundleAttached.digest],
    ]);

    const verified = await autonomy<VerifyJson>(["verify", ref, "--key", key.pub, "--require-lock", "--require-policy", "--plain-http"]);
    expect(verified.artifact.digest).toBe(image.digest);
    expect(verified.steps.map((s) => s.step)).toEqual(["artifact-signature", "artifact-digests", "lock", "policy"]);
    expect(verified.steps.every((s) => s.ok)).toBe(true);
    expect(verified.artifact.signature.source).toBe("referrers-tag");
    expect(verified.lock?.manifest).toBe(lockAttached.digest);
    expect(verified.policy?.manifest).toBe(bundleAttached.digest);

    // What the registry itself holds, read with plain HTTP.
    const hex = image.digest.slice("sha256:".length);
    const tags = await tagsOf(repo);
    expect(tags).toEqual(expect.arrayContaining(["v1", `sha256-${hex}`, "v1-lock", "v1-policy", `sha256-${hex}.sig`]));
    expect(await manifestDigestAt(repo, "v1-lock")).toBe(lockAttached.digest);
    expect(await manifestDigestAt(repo, "v1-policy")).toBe(bundleAttached.digest);
    const artifactSig = signed.signed[0]!.signature;
    expect(await manifestDigestAt(repo, `sha256-${hex}.sig`)).toBe(artifactSig);

    const fallback = await registryGet(`/v2/${repo}/manifests/sha256-${hex}`, OCI_INDEX);
    expect(fallback.status).toBe(200);
    const index = (await fallback.json()) as { mediaType: string; manifests: { digest: string; artifactType?: string }[] };
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.manifests.map((m) => [m.digest, m.artifactType])).toEqual(expect.arrayContaining([
      [lockAttached.digest, LOCK_TYPE],
      [bundleAttached.digest, BUNDLE_TYPE],
      [artifactSig, COSIGN_SIG_TYPE],
    ]));

    const referrers = await autonomy<{ subject: string; referrers: { digest: string; artifactType?: string; source: string }[] }>(["oci", "referrers", ref, "--plain-http"]);
    expect(referrers.subject).toBe(image.digest);
    expect(referrers.referrers.map((r) => r.digest).sort()).toEqual([lockAttached.digest, bundleAttached.digest, artifactSig].sort());
    expect(new Set(referrers.referrers.map((r) => r.source))).toEqual(new Set(["referrers-tag"]));
  });
});

withRegistry.describe("verification refuses (exit 4, stable code, no stack trace)", () => {
  it("SIGNATURE_INVALID with the wrong public key", async () => {
    const { ref } = await pushUniqueImage();
    await autonomy(["sign", ref, "--key", key.priv, "--plain-http"]);
    const r = await runJson(["verify", ref, "--key", otherKey.pub, "--plain-http"]);
    expectRefusal(r, 4, "SIGNATURE_INVALID");
  });

  it("SIGNATURE_MISSING for an artifact never signed", async () => {
    const { ref, image } = await pushUniqueImage();
    const r = await runJson(["verify", ref, "--key", key.pub, "--plain-http"]);
    expectRefusal(r, 4, "SIGNATURE_MISSING");
    expect(r.json.digest).toBe(image.digest);
  });

  it("BLOB_DIGEST_MISMATCH from verify (and OCI_DIGEST_MISMATCH from pull) for a layer corrupted on the registry's disk", async () => {
    const { ref, image } = await pushUniqueImage();
    await autonomy(["sign", ref, "--key", key.priv, "--plain-http"]);
    await autonomy(["verify", ref, "--key", key.pub, "--plain-http"]);

    const layer = image.layers[0]!.digest;
    const hex = layer.slice("sha256:".length);
    const blobPath = join(registry.dataDir, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
    const bytes = await readFile(blobPath);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff; // same size, different content
    await writeFile(blobPath, bytes);

    const r = await runJson(["verify", ref, "--key", key.pub, "--plain-http"]);
    expectRefusal(r, 4, "BLOB_DIGEST_MISMATCH");
    expect(r.json.expected).toBe(layer);
    expect(r.json.actual).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.json.actual).not.toBe(layer);

    const out = join(dir, "pulled-corrupt");
    const pulled = await runJson(["oci", "pull", ref, "--plain-http", "-o", out]);
    expectRefusal(pulled, 4, "OCI_DIGEST_MISMATCH");
    await expect(stat(join(out, hex))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("SIGNATURE_STALE with --max-age 1s two seconds after signing", async () => {
    const { ref } = await pushUniqueImage();
    await autonomy(["sign", ref, "--key", key.priv, "--plain-http"]);
    await new Promise((r) => setTimeout(r, 2_100));
    const r = await runJson(["verify", ref, "--key", key.pub, "--max-age", "1s", "--plain-http"]);
    expectRefusal(r, 4, "SIGNATURE_STALE");
    expect(r.json.maxAgeMs).toBe(1000);
    expect(r.json.ageMs).toBeGreaterThan(1000);
  });

  it("POLICY_MISSING with --require-policy when only a lock is attached", async () => {
    const { repo, ref, image } = await pushUniqueImage();
    const bundle = await writeBundle("bundle-never-attached.tar.gz");
    const lock = await createLock(repo, image.digest, bundle, "lock-no-policy.json");
    await autonomy(["oci", "attach", ref, lock, "--artifact-type", LOCK_TYPE, "--plain-http"]);
    await autonomy(["sign", ref, "--key", key.priv, "--plain-http"]);
    // The lock alone is fine…
    await autonomy(["verify", ref, "--key", key.pub, "--require-lock", "--plain-http"]);
    // …but a policy bundle is demanded and absent.
    const r = await runJson(["verify", ref, "--key", key.pub, "--require-lock", "--require-policy", "--plain-http"]);
    expectRefusal(r, 4, "POLICY_MISSING");
    expect(r.json.digest).toBe(image.digest);
  });
});

withRegistry.describe("quickstart against the registry", () => {
  it("plays tutorial 01 end to end and reports ok", async () => {
    const r = await runJson<{ ok: boolean; ref: string; digest: string; steps: { step: string; ok: boolean }[] }>(
      ["quickstart", "--registry", registry.host, "--plain-http", "--dir", join(dir, "quickstart")],
    );
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.json.ok).toBe(true);
    expect(r.json.ref.startsWith(`${registry.host}/`)).toBe(true);
    expect(r.json.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(r.json.steps.length).toBeGreaterThan(0);
    expect(r.json.steps.filter((s) => !s.ok)).toEqual([]);
  });
});

withRegistry.describe("an unreachable registry", () => {
  it("exits 1 with OCI_REGISTRY_UNREACHABLE and a hint for 127.0.0.1:1", async () => {
    // Port 1 is on the WHATWG fetch "bad ports" list: undici refuses it before connecting ("bad port").
    const r = await runJson(["oci", "pull", "127.0.0.1:1/x:y", "--plain-http", "-o", join(dir, "unreachable-1")]);
    expectRefusal(r, 1, "OCI_REGISTRY_UNREACHABLE");
    expect(r.stderr).toMatch(/^hint: .*--plain-http/m);
  });

  it("exits 1 with OCI_REGISTRY_UNREACHABLE (connection refused) for a closed loopback port", async () => {
    const port = await freePort();
    const r = await runJson(["oci", "pull", `127.0.0.1:${port}/x:y`, "--plain-http", "-o", join(dir, "unreachable-2")]);
    expectRefusal(r, 1, "OCI_REGISTRY_UNREACHABLE");
    expect(r.json.message).toContain("connection refused");
    expect(r.stderr).toMatch(/^hint: /m);
  });
});
