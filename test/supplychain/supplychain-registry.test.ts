/**
 * The whole release, CLI process by CLI process, over the real Debian
 * docker-registry 2.8.2 on loopback: keys → image → lock → attach lock and
 * bundle → sign → verify. Distribution 2.8 has no referrers API, so this runs
 * the fallback path end to end: the `sha256-<hex>` referrers-tag index, the
 * `<tag>-lock` / `<tag>-policy` sidecar tags, cosign's `sha256-<hex>.sig` and
 * `sha256-<hex>.att` tags, checked with plain HTTP against the registry rather
 * than with our client. Then every way verification must refuse (exit 4, a
 * stable code, no stack).
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeRun, runCli, runJson } from "../helpers/cli.js";
import type { CliJson, JsonRunResult } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";
import { freePort, startRegistry } from "../helpers/registry.js";
import { EXAMPLE_POLICIES as POLICIES } from "../helpers/release.js";
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

const STATEMENT_TYPE = "application/vnd.autonomyops.release-statement.v1+dsse";
const DSSE_TYPE = "application/vnd.dsse.envelope.v1+json";

interface VerifyJson {
  ok: boolean;
  artifact: { digest: string };
  statement: { digest: string; predicate: { sequence: number; channel: string; repository: string } };
  steps: { step: string; ok: boolean; detail: string }[];
  lock: { blob: string };
  policy: { blob: string };
  skipped: { candidate: string; source: string; reason: string }[];
  ignored: { manifest: string; blob?: string; reason: string }[];
}

interface SignJson {
  digest: string;
  statement: { digest: string; envelope: string; referrer: string };
  lock: { digest: string; manifest: string; attached: boolean };
  policy: { digest: string; manifest: string; attached: boolean };
  signatures: string[];
  unnamed: { blob: string }[];
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

let bundleCounter = 0;

/** A real policy bundle (`autonomy policy build`), unique by its version. */
async function writeBundle(name: string): Promise<string> {
  const path = join(dir, name);
  await autonomy(["policy", "build", POLICIES, "-o", path, "--name", "demo", "--version", `1.0.${++bundleCounter}`]);
  return path;
}

async function createLock(repo: string, digest: string, bundle: string, name: string): Promise<string> {
  const path = join(dir, name);
  await autonomy(["lock", "create", "--agent-image", `${registry.host}/${repo}@${digest}`, "--policy-bundle", bundle, "-o", path]);
  return path;
}

/** An image with its own lock and bundle, signed at `sequence` naming them. */
async function signedRelease(sequence = 1, extra: string[] = []): Promise<{ repo: string; ref: string; image: PushJson; lock: string; bundle: string; signed: SignJson }> {
  const { repo, ref, image } = await pushUniqueImage();
  const bundle = await writeBundle(`bundle-${repoCounter}.tar.gz`);
  const lock = await createLock(repo, image.digest, bundle, `lock-${repoCounter}.json`);
  const signed = await autonomy<SignJson>(["sign", ref, "--key", key.priv, "--sequence", String(sequence), "--lock", lock, "--policy-bundle", bundle, "--plain-http", ...extra]);
  return { repo, ref, image, lock, bundle, signed };
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
  it("pushes, locks, signs naming the lock and bundle (attaching them), and verifies every step, via the fallback tags", async () => {
    const { repo, ref, image } = await pushUniqueImage();
    const bundle = await writeBundle("bundle-full.tar.gz");
    const lock = await createLock(repo, image.digest, bundle, "lock-full.json");
    const signRun = await runJson<SignJson>(["sign", ref, "--key", key.priv, "--sequence", "1", "--lock", lock, "--policy-bundle", bundle, "--plain-http", "--json"]);
    expect(signRun.code, describeRun(signRun)).toBe(0);
    const signed = signRun.json;
    expect(signRun.stderr).toContain(`signing ${image.digest}`);
    expect(signed.digest).toBe(image.digest);
    expect([signed.lock.attached, signed.policy.attached]).toEqual([true, true]);
    expect(signed.unnamed).toEqual([]);

    const verified = await autonomy<VerifyJson>(["verify", ref, "--key", key.pub, "--plain-http"]);
    expect(verified.artifact.digest).toBe(image.digest);
    expect(verified.steps.map((s) => s.step)).toEqual(["statement", "artifact-digests", "lock", "policy"]);
    expect(verified.steps.every((s) => s.ok)).toBe(true);
    expect(verified.statement).toMatchObject({ digest: signed.statement.digest, predicate: { sequence: 1, channel: "stable", repository: `${registry.host}/${repo}` } });
    expect(verified.lock.blob).toBe(signed.lock.digest);
    expect(verified.policy.blob).toBe(signed.policy.digest);
    expect(verified.skipped).toEqual([]);

    // What the registry itself holds, read with plain HTTP.
    const hex = image.digest.slice("sha256:".length);
    const tags = await tagsOf(repo);
    expect(tags).toEqual(expect.arrayContaining(["v1", `sha256-${hex}`, "v1-lock", "v1-policy", `sha256-${hex}.sig`, `sha256-${hex}.att`]));
    expect(await manifestDigestAt(repo, "v1-lock")).toBe(signed.lock.manifest);
    expect(await manifestDigestAt(repo, "v1-policy")).toBe(signed.policy.manifest);
    expect(await manifestDigestAt(repo, `sha256-${hex}.sig`)).toBe(signed.signatures[0]);

    const fallback = await registryGet(`/v2/${repo}/manifests/sha256-${hex}`, OCI_INDEX);
    expect(fallback.status).toBe(200);
    const index = (await fallback.json()) as { mediaType: string; manifests: { digest: string; artifactType?: string }[] };
    expect(index.mediaType).toBe(OCI_INDEX);
    expect(index.manifests.map((m) => [m.digest, m.artifactType])).toEqual(expect.arrayContaining([
      [signed.lock.manifest, LOCK_TYPE],
      [signed.policy.manifest, BUNDLE_TYPE],
      [signed.signatures[0], COSIGN_SIG_TYPE],
      [signed.statement.referrer, STATEMENT_TYPE],
    ]));
    // cosign's tag scheme: one manifest under .att whose layer is the DSSE envelope.
    const att = await registryGet(`/v2/${repo}/manifests/sha256-${hex}.att`, OCI_MANIFEST);
    const attManifest = (await att.json()) as { layers: { mediaType: string; digest: string; annotations: Record<string, string> }[] };
    expect(attManifest.layers).toEqual([expect.objectContaining({ mediaType: DSSE_TYPE, digest: signed.statement.envelope,
      annotations: { predicateType: "https://autonomyops.dev/release/v1", "dev.cosignproject.cosign/signature": "" } })]);

    // A second release of the same image appends to .att; verify picks the higher sequence.
    const again = await autonomy<SignJson>(["sign", ref, "--key", key.priv, "--sequence", "2", "--lock", lock, "--policy-bundle", bundle, "--plain-http"]);
    expect([again.lock.attached, again.policy.attached]).toEqual([false, false]);
    const att2 = (await (await registryGet(`/v2/${repo}/manifests/sha256-${hex}.att`, OCI_MANIFEST)).json()) as { layers: { digest: string }[] };
    expect(att2.layers.map((l) => l.digest)).toEqual([signed.statement.envelope, again.statement.envelope]);
    const text = await runCli(["verify", ref, "--key", key.pub, "--plain-http"]);
    expect(text.code, describeRun(text)).toBe(0);
    expect(text.stdout).toMatch(/✓ statement: sequence 2, channel stable/);
  });
});

withRegistry.describe("verification refuses (exit 4, stable code, no stack trace)", () => {
  it("STATEMENT_MISSING with the wrong public key, naming the reason", async () => {
    const { ref } = await signedRelease();
    const r = await runJson<CliJson & { skipped: { reason: string }[] }>(["verify", ref, "--key", otherKey.pub, "--plain-http"]);
    expectRefusal(r, 4, "STATEMENT_MISSING");
    expect(r.json.skipped.map((s) => s.reason)).toEqual([expect.stringMatching(/0 of the required 1 trusted key/)]);
  });

  it("STATEMENT_MISSING for an artifact never signed", async () => {
    const { ref, image } = await pushUniqueImage();
    const r = await runJson(["verify", ref, "--key", key.pub, "--plain-http"]);
    expectRefusal(r, 4, "STATEMENT_MISSING");
    expect(r.json.digest).toBe(image.digest);
  });

  it("BLOB_DIGEST_MISMATCH from verify (and OCI_DIGEST_MISMATCH from pull) for a layer corrupted on the registry's disk", async () => {
    const { ref, image } = await signedRelease();
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

  it("STATEMENT_MISSING (expired) with --expires-in 1s two seconds after signing", async () => {
    const { ref } = await signedRelease(1, ["--expires-in", "1s"]);
    await new Promise((r) => setTimeout(r, 2_100));
    const r = await runJson<CliJson & { skipped: { reason: string }[] }>(["verify", ref, "--key", key.pub, "--plain-http"]);
    expectRefusal(r, 4, "STATEMENT_MISSING");
    expect(r.json.skipped.map((s) => s.reason)).toEqual([expect.stringMatching(/^expired at /)]);
  });

  it("sign refuses a bundle the lock does not name (POLICY_DIGEST_MISMATCH) and publishes no statement", async () => {
    const { repo, ref, image } = await pushUniqueImage();
    const bundle = await writeBundle("bundle-named.tar.gz");
    const other = await writeBundle("bundle-other.tar.gz");
    const lock = await createLock(repo, image.digest, bundle, "lock-named.json");
    const r = await runJson(["sign", ref, "--key", key.priv, "--sequence", "1", "--lock", lock, "--policy-bundle", other, "--plain-http"]);
    // Progress lines come first on stderr; the refusal ends it.
    expect({ exit: r.code, code: r.json.code }, describeRun(r)).toEqual({ exit: 4, code: "POLICY_DIGEST_MISMATCH" });
    expect(r.stderr).toMatch(/\nerror: .+\nhint: .+\n$/);
    expectRefusal(await runJson(["verify", ref, "--key", key.pub, "--plain-http"]), 4, "STATEMENT_MISSING");
  });

  it("key compromise: with two keys and --threshold 2 one key's statement is refused, both keys' statement verifies", async () => {
    const second = join(dir, "keys", "second");
    await autonomy(["keys", "generate", "--out", second]);
    const { ref, lock, bundle } = await signedRelease(1);
    const both = ["--key", key.pub, "--key", `${second}.pub`, "--threshold", "2", "--plain-http"];
    const r = await runJson<CliJson & { skipped: { reason: string }[] }>(["verify", ref, ...both]);
    expectRefusal(r, 4, "STATEMENT_MISSING");
    expect(r.json.skipped.map((s) => s.reason)).toEqual([expect.stringMatching(/1 of the required 2/)]);
    await autonomy(["sign", ref, "--key", key.priv, "--key", `${second}.key`, "--sequence", "2", "--lock", lock, "--policy-bundle", bundle, "--plain-http"]);
    const ok = await autonomy<VerifyJson & { statement: { keyIds: string[] } }>(["verify", ref, ...both]);
    expect(ok.statement.keyIds).toHaveLength(2);
    // A threshold above the keys given is a usage error, not a silent downgrade.
    expectRefusal(await runJson(["verify", ref, "--key", key.pub, "--threshold", "2", "--plain-http"]), 2, "USAGE");
  });

  it("an oci: layout copy cannot be verified without --repository (usage error with a hint), and verifies with it", async () => {
    const { ref, repo } = await signedRelease();
    const layout = `oci:${join(dir, "airgap")}:v1`;
    await autonomy(["oci", "copy", ref, layout, "--plain-http"]);
    const r = await runJson(["verify", layout, "--key", key.pub]);
    expectRefusal(r, 2, "USAGE");
    expect(r.stderr).toMatch(/--repository/);
    // Signing a layout needs it too: the signed identity is never derived from a path.
    const s = await runJson(["sign", layout, "--key", key.priv, "--sequence", "2", "--lock", join(dir, `lock-${repoCounter}.json`), "--policy-bundle", join(dir, `bundle-${repoCounter}.tar.gz`)]);
    expectRefusal(s, 2, "USAGE");
    await autonomy(["verify", layout, "--key", key.pub, "--repository", `${registry.host}/${repo}`]);
  });
});

withRegistry.describe("quickstart against the registry", () => {
  it("plays tutorial 01 end to end and reports ok", async () => {
    const r = await runJson<{ ok: boolean; ref: string; digest: string; steps: { step: string; ok: boolean }[] }>(
      ["quickstart", "--tutorial", "01", "--registry", registry.host, "--plain-http", "--dir", join(dir, "quickstart")],
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
