/**
 * Independent checks (DESIGN §7): what the `autonomy` CLI writes is read back by
 * tools we did not write — skopeo 1.9.3 (image layouts and the registry), b3sum
 * (lock fingerprints) and openssl (signatures) — and what skopeo writes is read
 * by us. Real processes against the real Debian docker-registry 2.8.2 on
 * loopback; that registry has no referrers API, so attachments and signatures
 * travel under the `sha256-<hex>` referrers-tag schema and cosign's `.sig` tag.
 */
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeRun, runCli, runJson, runProcess } from "../helpers/cli.js";
import type { RunResult } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";
import { startRegistry } from "../helpers/registry.js";
import { EXAMPLE_POLICIES } from "../helpers/release.js";
import type { StartedRegistry } from "../helpers/registry.js";

// Every suite talks to the registry (started once for the file) and to skopeo.
const interop = needs("docker-registry", "skopeo");

const COSIGN_SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json";
const COSIGN_SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json";
const COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature";
const STATEMENT_TYPE = "application/vnd.autonomyops.release-statement.v1+dsse";
const DSSE_TYPE = "application/vnd.dsse.envelope.v1+json";

let releaseFileCounter = 0;

/** A real policy bundle and a lock pinning `imageRef@digest` and it: the files `autonomy sign` names. */
async function releaseFiles(imageRef: string, digest: string): Promise<string[]> {
  const n = ++releaseFileCounter;
  const bundle = join(dir, `bundle-${n}.tar.gz`);
  const lock = join(dir, `lock-${n}.json`);
  await autonomy(["policy", "build", EXAMPLE_POLICIES, "-o", bundle, "--name", "demo", "--version", `1.0.${n}`]);
  await autonomy(["lock", "create", "--agent-image", `${imageRef}@${digest}`, "--policy-bundle", bundle, "-o", lock]);
  return ["--sequence", "1", "--lock", lock, "--policy-bundle", bundle];
}

interface PushJson {
  ok: boolean;
  digest: string;
  mediaType: string;
  layers: { digest: string; size: number }[];
}

interface PullJson {
  ok: boolean;
  digest: string;
  artifactType?: string;
  files: { path: string; digest: string; size: number; mediaType: string }[];
}

interface ReferrersJson {
  ok: boolean;
  subject: string;
  referrers: { digest: string; artifactType?: string; source: string; mediaType: string; size: number }[];
}

interface Manifest {
  artifactType?: string;
  config: { mediaType: string; digest: string };
  layers: { mediaType: string; digest: string; size: number; annotations?: Record<string, string> }[];
  subject?: { digest: string };
}

function sha256(data: Uint8Array): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

async function tool(command: string, args: string[], opts: { input?: string | Uint8Array } = {}): Promise<RunResult> {
  return runProcess(command, args, opts);
}

/** Runs a tool and insists it succeeded. */
async function ok(command: string, args: string[], opts: { input?: string | Uint8Array } = {}): Promise<RunResult> {
  const r = await tool(command, args, opts);
  expect(r.code, `${command} ${args.join(" ")}\n${describeRun(r)}`).toBe(0);
  return r;
}

/** Runs `autonomy ARGS --json`, insists on exit 0 and `ok: true`, returns the document. */
async function autonomy<T>(args: string[]): Promise<T> {
  const r = await runJson<T & { ok?: boolean }>(args);
  expect(r.code, `autonomy ${args.join(" ")}\n${describeRun(r)}`).toBe(0);
  expect(r.json.ok).toBe(true);
  return r.json;
}

let registry: StartedRegistry;
let dir: string;
let agentFiles: string[];
/** Our single-layer agent image, written by `autonomy oci push --image` to an image layout. */
let layout: string;
let image: PushJson;
let keyPrefix: string;

beforeAll(async () => {
  interop.check();
  registry = await startRegistry();
  dir = await mkdtemp(join(tmpdir(), "autonomy-interop-skopeo-"));
  agentFiles = [join(dir, "agent.py"), join(dir, "tools.json")];
  await writeFile(agentFiles[0]!, 'print("edge agent")\n');
  await writeFile(agentFiles[1]!, `${JSON.stringify({ tools: ["tool.echo"] })}\n`);
  layout = join(dir, "layout");
  image = await autonomy<PushJson>(["oci", "push", `oci:${layout}:v1`, ...agentFiles, "--image"]);
  keyPrefix = join(dir, "keys", "release");
  await autonomy(["keys", "generate", "--out", keyPrefix]);
});

afterAll(async () => {
  await registry?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interop.describe("skopeo reads what `autonomy oci push --image` writes", () => {
  it("inspects the layout image with our manifest digest, layers and rootfs diff_ids", async () => {
    expect(image.layers).toHaveLength(1);

    const raw = await ok("skopeo", ["inspect", "--raw", `oci:${layout}:v1`]);
    expect(sha256(raw.stdoutBytes)).toBe(image.digest);

    const inspected = JSON.parse((await ok("skopeo", ["inspect", `oci:${layout}:v1`])).stdout) as { Digest: string; Layers: string[]; Os: string };
    expect(inspected.Digest).toBe(image.digest);
    expect(inspected.Layers).toEqual(image.layers.map((l) => l.digest));
    expect(inspected.Os).toBe("linux");

    // The config's diff_id must be the sha256 of the uncompressed layer, or runtimes reject the image.
    const config = JSON.parse((await ok("skopeo", ["inspect", "--config", `oci:${layout}:v1`])).stdout) as { rootfs: { type: string; diff_ids: string[] } };
    const layerBlob = await readFile(join(layout, "blobs", "sha256", image.layers[0]!.digest.slice("sha256:".length)));
    expect(sha256(layerBlob)).toBe(image.layers[0]!.digest);
    expect(config.rootfs).toEqual({ type: "layers", diff_ids: [sha256(gunzipSync(layerBlob))] });

    // GNU tar (not our tar library) lists the files under agent/.
    const listing = await ok("tar", ["-tzf", join(layout, "blobs", "sha256", image.layers[0]!.digest.slice("sha256:".length))]);
    expect(listing.stdout.split("\n").filter(Boolean).map((l) => l.replace(/\/$/, "")).sort()).toEqual(["agent", "agent/agent.py", "agent/tools.json"]);
  });

  it("builds byte-identical images from identical input (same digest in a second layout)", async () => {
    const again = await autonomy<PushJson>(["oci", "push", `oci:${join(dir, "layout-again")}:v1`, ...agentFiles, "--image"]);
    expect(again.digest).toBe(image.digest);
  });
});

interop.describe("skopeo → registry → autonomy", () => {
  it("pulls what `skopeo copy --preserve-digests` pushed, with the same manifest and layer digests", async () => {
    await ok("skopeo", ["copy", "--preserve-digests", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${registry.host}/agent:v1`]);
    const out = join(dir, "pulled-agent");
    const pulled = await autonomy<PullJson>(["oci", "pull", `${registry.host}/agent:v1`, "--plain-http", "-o", out]);
    expect(pulled.digest).toBe(image.digest);
    expect(pulled.files.map((f) => f.digest)).toEqual(image.layers.map((l) => l.digest));
    expect(pulled.files[0]!.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
    // coreutils, not our hashing, checks the bytes we wrote.
    const sum = await ok("sha256sum", [pulled.files[0]!.path]);
    expect(`sha256:${sum.stdout.split(/\s+/)[0]}`).toBe(image.layers[0]!.digest);
    expect(await readdir(out)).toHaveLength(1);
  });
});

interop.describe("autonomy → registry → skopeo", () => {
  it("copies a signed layout image into the registry so skopeo sees the digest, the .sig tag and `autonomy verify` passes there", async () => {
    // A separate layout holding the same image, signed, so `oci copy` carries the signature along.
    const src = join(dir, "signed-src");
    const again = await autonomy<PushJson>(["oci", "push", `oci:${src}:v1`, ...agentFiles, "--image"]);
    expect(again.digest).toBe(image.digest);
    // A layout does not name the release repository: the operator names the registry repository nodes pull from.
    const signed = await autonomy<{ statement: { referrer: string; envelope: string } }>(["sign", `oci:${src}:v1`, "--key", `${keyPrefix}.key`,
      "--repository", `${registry.host}/agent2`, ...await releaseFiles(`oci:${src}`, image.digest)]);

    const copied = await autonomy<{ digest: string; referrers: number }>(["oci", "copy", `oci:${src}:v1`, `${registry.host}/agent2:v1`, "--plain-http"]);
    expect(copied.digest).toBe(image.digest);
    // The signature, the release statement, the lock and the bundle.
    expect(copied.referrers).toBe(4);

    const inspected = JSON.parse((await ok("skopeo", ["inspect", "--tls-verify=false", `docker://${registry.host}/agent2:v1`])).stdout) as { Digest: string; Layers: string[] };
    expect(inspected.Digest).toBe(image.digest);
    expect(inspected.Layers).toEqual(image.layers.map((l) => l.digest));
    const raw = await ok("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/agent2:v1`]);
    expect(sha256(raw.stdoutBytes)).toBe(image.digest);

    // The copied signature is at cosign's tag, and it names our image as its subject.
    const sigTag = `${image.digest.replace(":", "-")}.sig`;
    const sig = JSON.parse((await ok("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/agent2:${sigTag}`])).stdout) as Manifest;
    expect(sig.artifactType).toBe(COSIGN_SIG_TYPE);
    expect(sig.subject?.digest).toBe(image.digest);

    // skopeo reads the release statement referrer (empty config, one DSSE layer) and copies it with its blobs.
    const st = JSON.parse((await ok("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/agent2@${signed.statement.referrer}`])).stdout) as Manifest & { layers: { mediaType: string; digest: string }[] };
    expect(st.artifactType).toBe(STATEMENT_TYPE);
    expect(st.subject?.digest).toBe(image.digest);
    expect(st.layers.map((l) => [l.mediaType, l.digest])).toEqual([[DSSE_TYPE, signed.statement.envelope]]);
    const stCopy = join(dir, "statement-copy");
    await ok("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", `docker://${registry.host}/agent2@${signed.statement.referrer}`, `oci:${stCopy}:st`]);
    const envelope = JSON.parse(await readFile(join(stCopy, "blobs", "sha256", signed.statement.envelope.slice("sha256:".length)), "utf8")) as { payloadType: string };
    expect(envelope.payloadType).toBe("application/vnd.in-toto+json");

    const verified = await runJson(["verify", `${registry.host}/agent2:v1`, "--key", `${keyPrefix}.pub`, "--plain-http"]);
    expect(verified.code, describeRun(verified)).toBe(0);
  });

  it("reads a layout that skopeo wrote from the registry (referrers and pull)", async () => {
    // Depends on nothing above: put the image in the registry with our own copy first.
    await autonomy(["oci", "copy", `oci:${layout}:v1`, `${registry.host}/agent3:v1`, "--plain-http"]);
    const dir2 = join(dir, "from-skopeo");
    await ok("skopeo", ["copy", "--src-tls-verify=false", `docker://${registry.host}/agent3:v1`, `oci:${dir2}:v1`]);
    const raw = await ok("skopeo", ["inspect", "--raw", `oci:${dir2}:v1`]);
    expect(sha256(raw.stdoutBytes)).toBe(image.digest);

    const refs = await autonomy<ReferrersJson>(["oci", "referrers", `oci:${dir2}:v1`]);
    expect(refs.subject).toBe(image.digest);
    // skopeo 1.9.3 copies the tagged image only, never referrers.
    expect(refs.referrers).toEqual([]);

    const pulled = await autonomy<PullJson>(["oci", "pull", `oci:${dir2}:v1`, "-o", join(dir, "pulled-from-skopeo-layout")]);
    expect(pulled.digest).toBe(image.digest);
    expect(pulled.files.map((f) => f.digest)).toEqual(image.layers.map((l) => l.digest));
    expect(sha256(await readFile(pulled.files[0]!.path))).toBe(image.layers[0]!.digest);
  });
});

interop.describe("an OCI artifact (not an image)", () => {
  it("is readable raw by skopeo, copyable by skopeo, and pulled back byte for byte", async () => {
    const file = join(dir, "notes.txt");
    await writeFile(file, "release notes for the edge fleet\n");
    const art = join(dir, "artifact");
    const pushed = await autonomy<PushJson>(["oci", "push", `oci:${art}:a1`, file, "--artifact-type", "application/vnd.example.notes.v1"]);

    const raw = await ok("skopeo", ["inspect", "--raw", `oci:${art}:a1`]);
    expect(sha256(raw.stdoutBytes)).toBe(pushed.digest);
    const manifest = JSON.parse(raw.stdout) as Manifest;
    expect(manifest.artifactType).toBe("application/vnd.example.notes.v1");
    expect(manifest.config.mediaType).toBe("application/vnd.oci.empty.v1+json");

    // skopeo 1.9.3 refuses a full `inspect` of an artifact whose config is not an image config:
    // `level=fatal msg="unsupported image-specific operation on artifact with type \"application/vnd.oci.empty.v1+json\""`.
    const full = await tool("skopeo", ["inspect", `oci:${art}:a1`]);
    expect(full.code).not.toBe(0);
    expect(full.stderr).toContain("unsupported image-specific operation on artifact");

    // …but it copies it with digests preserved, and we pull it from the registry by title.
    await ok("skopeo", ["copy", "--preserve-digests", "--dest-tls-verify=false", `oci:${art}:a1`, `docker://${registry.host}/notes:a1`]);
    const out = join(dir, "pulled-notes");
    const pulled = await autonomy<PullJson>(["oci", "pull", `${registry.host}/notes:a1`, "--plain-http", "-o", out]);
    expect(pulled.digest).toBe(pushed.digest);
    expect(pulled.artifactType).toBe("application/vnd.example.notes.v1");
    expect(pulled.files.map((f) => f.path)).toEqual([join(out, "notes.txt")]);
    expect(await readFile(join(out, "notes.txt"), "utf8")).toBe("release notes for the edge fleet\n");
  });
});

needs("docker-registry", "skopeo", "b3sum").describe("b3sum recomputes the lock fingerprint", () => {
  it("hashes `lock fingerprint --payload` to what `lock fingerprint` prints", async () => {
    const bundle = join(dir, "bundle.tar.gz");
    await writeFile(bundle, "not really a tarball, only its digest matters here\n");
    const lockPath = join(dir, "autonomy.lock.json");
    const created = await autonomy<{ behavioral_fingerprint: string }>(["lock", "create", "--agent-image", `${registry.host}/agent@${image.digest}`, "--policy-bundle", bundle, "-o", lockPath]);

    const fp = await runCli(["lock", "fingerprint", lockPath]);
    expect(fp.code, describeRun(fp)).toBe(0);
    expect(fp.stdout.trim()).toBe(created.behavioral_fingerprint);

    // A real shell pipe, as an operator would type it.
    const q = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;
    const piped = await ok("bash", ["-o", "pipefail", "-c", `${q(process.execPath)} bin/autonomy.js lock fingerprint --payload ${q(lockPath)} | b3sum --no-names`]);
    expect(`blake3:${piped.stdout.trim()}`).toBe(fp.stdout.trim());
    expect(fp.stdout.trim()).toMatch(/^blake3:[0-9a-f]{64}$/);
  });
});

needs("docker-registry", "skopeo", "openssl").describe("openssl verifies a signature `autonomy sign` stored in the registry", () => {
  it("accepts the payload blob with the DER signature from the cosign annotation, and rejects a flipped byte", async () => {
    await ok("skopeo", ["copy", "--preserve-digests", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${registry.host}/signed:v1`]);
    await autonomy(["sign", `${registry.host}/signed:v1`, "--key", `${keyPrefix}.key`, "--plain-http", ...await releaseFiles(`${registry.host}/signed`, image.digest)]);

    const refs = await autonomy<ReferrersJson>(["oci", "referrers", `${registry.host}/signed:v1`, "--artifact-type", COSIGN_SIG_TYPE, "--plain-http"]);
    expect(refs.subject).toBe(image.digest);
    expect(refs.referrers).toHaveLength(1);
    const sigRef = refs.referrers[0]!;
    expect(sigRef).toMatchObject({ artifactType: COSIGN_SIG_TYPE, source: "referrers-tag" });

    // The signature manifest, fetched by skopeo, is the one at cosign's .sig tag.
    const raw = await ok("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/signed@${sigRef.digest}`]);
    expect(sha256(raw.stdoutBytes)).toBe(sigRef.digest);
    const atTag = await ok("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/signed:${image.digest.replace(":", "-")}.sig`]);
    expect(sha256(atTag.stdoutBytes)).toBe(sigRef.digest);
    const manifest = JSON.parse(raw.stdout) as Manifest;
    expect(manifest.subject?.digest).toBe(image.digest);
    const layer = manifest.layers.find((l) => l.mediaType === COSIGN_SIMPLE_SIGNING);
    expect(layer).toBeDefined();
    const sigB64 = layer!.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
    expect(sigB64).toMatch(/^[A-Za-z0-9+/]+=*$/);

    const out = join(dir, "sig-payload");
    const pulled = await autonomy<PullJson>(["oci", "pull", `${registry.host}/signed@${sigRef.digest}`, "--plain-http", "-o", out]);
    expect(pulled.files).toHaveLength(1);
    const payloadPath = pulled.files[0]!.path;
    const payload = await readFile(payloadPath);
    expect(sha256(payload)).toBe(layer!.digest);
    const doc = JSON.parse(payload.toString("utf8")) as { critical: { type: string; image: { "docker-manifest-digest": string }; identity: { "docker-reference": string } } };
    expect(doc.critical.type).toBe("cosign container image signature");
    expect(doc.critical.image["docker-manifest-digest"]).toBe(image.digest);
    expect(doc.critical.identity["docker-reference"]).toBe(`${registry.host}/signed`);

    const der = join(dir, "sig.der");
    await writeFile(der, Buffer.from(sigB64!, "base64"));
    const verified = await ok("openssl", ["dgst", "-sha256", "-verify", `${keyPrefix}.pub`, "-signature", der, payloadPath]);
    expect(verified.stdout.trim()).toBe("Verified OK");

    const tampered = Buffer.from(payload);
    tampered[Math.floor(tampered.length / 2)]! ^= 0x01;
    const tamperedPath = join(dir, "payload-tampered.json");
    await writeFile(tamperedPath, tampered);
    const refused = await tool("openssl", ["dgst", "-sha256", "-verify", `${keyPrefix}.pub`, "-signature", der, tamperedPath]);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toContain("Verification failure");
  });
});

needs("docker-registry", "skopeo", "securesystemslib").describe("the release statement `autonomy sign` stores, read by tools we did not write", () => {
  it("skopeo copies cosign's .att tag manifest and Debian's securesystemslib verifies its DSSE layer, naming our image and repository", async () => {
    await ok("skopeo", ["copy", "--preserve-digests", "--dest-tls-verify=false", `oci:${layout}:v1`, `docker://${registry.host}/attested:v1`]);
    await autonomy(["sign", `${registry.host}/attested:v1`, "--key", `${keyPrefix}.key`, "--plain-http", ...await releaseFiles(`${registry.host}/attested`, image.digest)]);
    const att = join(dir, "att-copy");
    await ok("skopeo", ["copy", "--src-tls-verify=false", `docker://${registry.host}/attested:${image.digest.replace(":", "-")}.att`, `oci:${att}:att`]);
    const index = JSON.parse(await readFile(join(att, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(await readFile(join(att, "blobs", "sha256", index.manifests[0]!.digest.slice("sha256:".length)), "utf8")) as { layers: { mediaType: string; digest: string }[] };
    expect(manifest.layers.map((l) => l.mediaType)).toEqual([DSSE_TYPE]);
    const envelopePath = join(att, "blobs", "sha256", manifest.layers[0]!.digest.slice("sha256:".length));
    const verifier = join(import.meta.dirname, "../helpers/dsse_verify.py");
    const r = await tool("/usr/bin/python3", [verifier, envelopePath, "1", image.digest, `${keyPrefix}.pub`]);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ repository: `${registry.host}/attested`, channel: "stable", sequence: 1, image: { digest: image.digest } });
  });
});
