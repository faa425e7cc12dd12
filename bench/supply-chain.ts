/**
 * Supply-chain benchmark: every row is measured beside its peer or physical
 * limit in the same run, on this machine.
 *   - BLAKE3 (hash-wasm, in process) vs the reference b3sum vs SHA-256 (OpenSSL in node:crypto)
 *   - lock fingerprint latency (canonicalise + BLAKE3) per call
 *   - pushing a 64 MiB image: to an image layout vs raw write+fsync+rename of the same bytes
 *     (the disk's limit); to the real registry vs skopeo copying the same layout there
 *   - full release verification latency (signatures, every digest, lock, bundle)
 * Run: npm run bench:supply-chain
 */
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile, open, rename } from "node:fs/promises";
import { cpus, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { blake3 } from "hash-wasm";
import { computeFingerprint, createLock, serializeLock } from "../src/lock/index.js";
import { LayoutRepository, MediaTypes, attachFile, buildImage, copyArtifact, openRepository, parseReference, pushArtifact } from "../src/oci/index.js";
import { gzipSync } from "node:zlib";
import { generateKeyPair } from "../src/sign/index.js";
import { signRelease, trustedKeys, verifyRelease } from "../src/supplychain/index.js";
import { fsyncDir, sha256Digest } from "../src/lib/index.js";
import { startRegistry } from "../test/helpers/registry.js";
import { buildBundle } from "../src/policy/index.js";
import { setTrustRoot } from "../src/node/index.js";
import { activateRelease } from "../src/runtime/index.js";
import { EXAMPLE_POLICY_DIR } from "../test/helpers/policies.js";

const MiB = 1024 * 1024;
const rows: string[][] = [];
const row = (...cells: string[]): number => rows.push(cells);

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function timeIt(n: number, f: () => unknown): Promise<{ p50: number; p99: number; mean: number }> {
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    await f();
    t.push(Number(process.hrtime.bigint() - s) / 1e6);
  }
  t.sort((a, b) => a - b);
  return { p50: pct(t, 50), p99: pct(t, 99), mean: t.reduce((a, b) => a + b, 0) / t.length };
}

const mbps = (bytes: number, ms: number): string => `${((bytes / MiB) / (ms / 1000)).toFixed(0)} MiB/s`;

async function hashing(dir: string): Promise<void> {
  const data = randomBytes(64 * MiB);
  const file = join(dir, "blob.bin");
  await writeFile(file, data);
  const ours = await timeIt(5, () => blake3(data));
  const sha = await timeIt(5, () => createHash("sha256").update(data).digest());
  const ref = await timeIt(5, () => execFileSync("b3sum", ["--no-names", "--num-threads", "1", file]));
  const refMt = await timeIt(5, () => execFileSync("b3sum", ["--no-names", file]));
  row("BLAKE3 64 MiB, hash-wasm (ours, 1 thread)", mbps(data.length, ours.p50), "");
  row("BLAKE3 64 MiB, b3sum --num-threads 1 (reference, incl. process start)", mbps(data.length, ref.p50), "peer");
  row(`BLAKE3 64 MiB, b3sum all ${cpus().length} cores (reference)`, mbps(data.length, refMt.p50), "peer");
  row("SHA-256 64 MiB, node:crypto (OCI digests)", mbps(data.length, sha.p50), "peer");
  const lock = await createLock({ agentImageRef: "r/a:v1", agentDigest: sha256Digest("a"), policyBundleRef: "b", policyBundleDigest: sha256Digest("b") });
  const fp = await timeIt(2000, () => computeFingerprint(lock));
  row("lock fingerprint (JCS + BLAKE3), per call", `p50 ${(fp.p50 * 1000).toFixed(1)} µs, p99 ${(fp.p99 * 1000).toFixed(1)} µs`, "");
}

async function rawDurableWrite(path: string, data: Uint8Array): Promise<void> {
  const fh = await open(`${path}.tmp`, "w");
  await fh.writeFile(data);
  await fh.sync();
  await fh.close();
  await rename(`${path}.tmp`, path);
  await fsyncDir(join(path, ".."));
}

async function pushing(dir: string, agentFile: string, size: number): Promise<string> {
  let n = 0;
  const data = randomBytes(size);
  const artifact = await timeIt(3, async () => pushArtifact(new LayoutRepository(join(dir, `artifact-${n++}`)), [{ name: "a.bin", data }], { artifactType: "x/bench", tag: "v1" }));
  const raw = await timeIt(3, () => rawDurableWrite(join(dir, `raw-${n++}`), data));
  const image = await timeIt(3, async () => buildImage(new LayoutRepository(join(dir, `layout-${n++}`)), [agentFile], { tag: "v1" }));
  const gzip = await timeIt(3, () => gzipSync(data, { level: 9 }));
  row("push a 64 MiB artifact to an image layout (sha256 + durable write)", `${artifact.p50.toFixed(0)} ms (${mbps(size, artifact.p50)})`, "");
  row("raw write+fsync+rename+fsync(dir) of the same 64 MiB", `${raw.p50.toFixed(0)} ms (${mbps(size, raw.p50)})`, "limit");
  row("build a 64 MiB image into a layout (tar, gzip, sha256 ×3, durable)", `${image.p50.toFixed(0)} ms`, "");
  row("zlib gzip of the same 64 MiB alone (incompressible input)", `${gzip.p50.toFixed(0)} ms`, "limit");
  return join(dir, "layout-6");
}

/** A fresh registry per run: neither client may find the blobs already there (skopeo would mount them). */
async function registryPush(layoutDir: string): Promise<void> {
  const src = new LayoutRepository(layoutDir);
  const ours: number[] = [];
  const peer: number[] = [];
  for (let i = 0; i < 3; i++) {
    const reg = await startRegistry();
    try {
      const dst = openRepository(parseReference(`${reg.host}/ours:v1`), { plainHttp: true });
      ours.push((await timeIt(1, () => copyArtifact(src, "v1", dst, "v1"))).p50);
    } finally {
      await reg.stop();
    }
    const reg2 = await startRegistry();
    try {
      peer.push((await timeIt(1, () => {
        const r = spawnSync("skopeo", ["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false", `oci:${layoutDir}:v1`, `docker://${reg2.host}/skopeo:v1`]);
        if (r.status !== 0) throw new Error(`skopeo failed: ${r.stderr.toString()}`);
      })).p50);
    } finally {
      await reg2.stop();
    }
  }
  const med = (a: number[]): number => [...a].sort((x, y) => x - y)[1] ?? NaN;
  row("copy the 64 MiB image layout to an empty registry: autonomy oci copy", `${med(ours).toFixed(0)} ms`, "");
  row("the same with skopeo copy --preserve-digests", `${med(peer).toFixed(0)} ms`, "peer");
}

async function verifying(dir: string, agentFile: string): Promise<void> {
  const repo = new LayoutRepository(join(dir, "release"));
  const image = await buildImage(repo, [agentFile], { tag: "v1" });
  const bundle = randomBytes(64 * 1024);
  const lock = await createLock({ agentImageRef: "oci:release:v1", agentDigest: image.digest, policyBundleRef: "b", policyBundleDigest: sha256Digest(bundle) });
  const lockBytes = new TextEncoder().encode(serializeLock(lock));
  // Attached beforehand as before, so signing finds them and the verify timing covers the same store shape.
  await attachFile(repo, image.descriptor, { name: "autonomy.lock.json", data: lockBytes }, { artifactType: MediaTypes.lock });
  await attachFile(repo, image.descriptor, { name: "b.tar.gz", data: bundle }, { artifactType: MediaTypes.policyBundle });
  const keys = generateKeyPair({});
  await signRelease(repo, parseReference(`oci:${join(dir, "release")}:v1`), {
    keys: [createPrivateKey(keys.privatePem)], now: new Date(), sequence: 1, repository: "bench.example/release", lock: lockBytes, bundle: { bytes: bundle, name: "b", version: "1.0.0" },
  });
  const trust = { trusted: trustedKeys([createPublicKey(keys.publicPem)]), threshold: 1, channel: "stable", repository: "bench.example/release", now: new Date() };
  const v = await timeIt(20, () => verifyRelease(repo, "v1", trust));
  row("verify a full release with a 64 MiB layer (release statement, lock, bundle, all digests)", `p50 ${v.p50.toFixed(0)} ms, p99 ${v.p99.toFixed(0)} ms`, "");
}

/**
 * Verify + activate of a release with a 64 MiB layer and the example policy bundle, into a fresh
 * state root each time (verify, copy into the node store, load the policy, one atomic commit).
 * The same measurement ran on the code before release statements (9b7b1cf) for docs/benchmarks.md.
 */
async function activating(dir: string, agentFile: string): Promise<void> {
  const storeDir = join(dir, "act-release");
  const repo = new LayoutRepository(storeDir);
  const image = await buildImage(repo, [agentFile], { tag: "v1" });
  const bundle = await buildBundle(EXAMPLE_POLICY_DIR, { name: "bench", version: "1.0.0", createdAt: new Date(0) });
  const lock = await createLock({ agentImageRef: "oci:release:v1", agentDigest: image.digest, policyBundleRef: "bench:1.0.0", policyBundleDigest: bundle.digest });
  const keys = generateKeyPair({});
  const ref = parseReference(`oci:${storeDir}:v1`);
  const repository = "bench.example/release";
  await signRelease(repo, ref, {
    keys: [createPrivateKey(keys.privatePem)], now: new Date(), sequence: 1, repository,
    lock: new TextEncoder().encode(serializeLock(lock)), bundle: { bytes: bundle.bytes, name: "bench", version: "1.0.0" },
  });
  // The trust root is set up before the clock starts: the old code had none, and it is a one-off per node.
  const roots = Array.from({ length: 10 }, (_, i) => join(dir, `state-${i}`));
  for (const stateRoot of roots) await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository });
  let n = 0;
  const v = await timeIt(roots.length, () => activateRelease({ ref, stateRoot: roots[n++] ?? "" }));
  row("activate a release with a 64 MiB layer (verify, copy to the node store, load policy, commit)", `p50 ${v.p50.toFixed(0)} ms, p99 ${v.p99.toFixed(0)} ms`, "");
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "bench-supply-"));
  try {
    // Incompressible content: the image layer is as large as the input, a worst case for transfer.
    const agentFile = join(dir, "agent.bin");
    await writeFile(agentFile, randomBytes(64 * MiB));
    // BENCH_RELEASE_ONLY=1: only the verify and activate rows (for back-to-back runs against older code).
    if (process.env.BENCH_RELEASE_ONLY !== "1") {
      await hashing(dir);
      const layoutDir = await pushing(dir, agentFile, 64 * MiB);
      await registryPush(layoutDir);
    }
    await verifying(dir, agentFile);
    await activating(dir, agentFile);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  console.log(`machine: ${cpus().length} × ${cpu}, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`);
  console.log("| measurement | result | kind |\n|---|---|---|");
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
}

await main();
