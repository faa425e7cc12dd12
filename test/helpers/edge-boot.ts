/**
 * A real edge node for the bootstrap tests: a state root with a trust root, an
 * activated release (policy slots, release store), a telemetry WAL holding
 * entries, a signed and staged runtime, mTLS certificates made by openssl, OS
 * identity files the test controls, and an edge.toml pointing at all of it.
 * Nothing is faked: the precheck sees what a node would.
 */
import { execFileSync } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, readdir, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { signRuntimeManifest, stageRuntime } from "../../src/edge/index.js";
import { setTrustRoot } from "../../src/node/index.js";
import { activateRelease } from "../../src/runtime/index.js";
import { Wal } from "../../src/telemetry/index.js";
import { nodeWalLocation } from "../../src/node/index.js";
import { makeRelease, testKeys } from "./release.js";
import type { TestKeys } from "./release.js";

export const OS_RELEASE_A = 'NAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n';
export const OS_RELEASE_B = 'NAME="Debian GNU/Linux"\nVERSION_ID="13"\nID=debian\nPRETTY_NAME="Debian GNU/Linux 13 (trixie)"\n';

export interface EdgeBootFixture {
  dir: string;
  /** A template node (copy it with {@link cloneNode} per test). */
  template: string;
  keys: TestKeys;
  runtimeSrc: string;
  envelopeFile: string;
}

export interface EdgeNode {
  dir: string;
  stateRoot: string;
  config: string;
  osRelease: string;
  kernel: string;
  installDir: string;
}

/** openssl: a CA and a node certificate valid for `days` (negative: already expired). */
export function makeCerts(dir: string, opts: { days?: number; caDays?: number } = {}): void {
  const run = (args: string[]): void => void execFileSync("openssl", args, { cwd: dir, stdio: "ignore" });
  run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", String(opts.caDays ?? 365), "-subj", "/CN=fleet-ca"]);
  run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=edge-a"]);
  run(["x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "node.crt", "-days", String(opts.days ?? 90)]);
}

export function edgeToml(n: { stateRoot: string; osRelease: string; kernel: string; installDir?: string }): string {
  return [
    "config_version = 1",
    "[node]", 'id = "edge-a"', `state_root = ${JSON.stringify(n.stateRoot)}`,
    "[transport]", 'cert_file = "certs/node.crt"', 'key_file = "certs/node.key"', 'ca_file = "certs/ca.crt"',
    "[bootstrap]", `os_release_file = ${JSON.stringify(n.osRelease)}`, `kernel_release_file = ${JSON.stringify(n.kernel)}`, 'machine_arch = "x64"',
    ...(n.installDir ? [`runtime_install_dir = ${JSON.stringify(n.installDir)}`] : []),
    "",
  ].join("\n");
}

/** Builds the template node once (slow: release, activation, WAL, signing). */
export async function makeEdgeBootFixture(): Promise<EdgeBootFixture> {
  const dir = await mkdtemp(join(tmpdir(), "edge-boot-"));
  const keys = testKeys();
  const template = join(dir, "template");
  const stateRoot = join(template, "state");
  const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1, agentText: "one" });
  await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: `oci:${dir}/reg` });
  await activateRelease({ ref: rel.ref, stateRoot });
  const wal = await Wal.open(nodeWalLocation(stateRoot).dir, { otherState: nodeWalLocation(stateRoot).otherState });
  for (let i = 0; i < 5; i++) await wal.append({ kind: "lifecycle", i });
  await wal.close();
  // The runtime an operator ships: an executable and its data, signed with the release key.
  const runtimeSrc = join(dir, "runtime-src");
  await mkdir(join(runtimeSrc, "lib"), { recursive: true });
  await writeFile(join(runtimeSrc, "autonomy-runtime"), "#!/bin/sh\necho runtime v1\n", { mode: 0o755 });
  await writeFile(join(runtimeSrc, "lib", "policy-engine.wasm"), Buffer.from([0, 97, 115, 109, 1, 0, 0, 0]));
  const { envelope } = await signRuntimeManifest(runtimeSrc, [keys.privateKey]);
  const envelopeFile = join(dir, "runtime.dsse.json");
  await writeFile(envelopeFile, JSON.stringify(envelope));
  await stageRuntime({ stateRoot, fromDir: runtimeSrc, envelopeFile });
  await mkdir(join(template, "certs"));
  makeCerts(join(template, "certs"));
  await writeFile(join(template, "os-release"), OS_RELEASE_A);
  await writeFile(join(template, "osrelease"), "6.1.0-18-amd64\n");
  return { dir, template, keys, runtimeSrc, envelopeFile };
}

let clones = 0;
/** A fresh copy of the template node with its own edge.toml (absolute paths inside the copy). */
export async function cloneNode(f: EdgeBootFixture, opts: { install?: boolean } = {}): Promise<EdgeNode> {
  const dir = join(f.dir, `node-${++clones}`);
  await cp(f.template, dir, { recursive: true });
  const n = { dir, stateRoot: join(dir, "state"), osRelease: join(dir, "os-release"), kernel: join(dir, "osrelease"), installDir: join(dir, "opt", "autonomy") };
  const config = join(dir, "edge.toml");
  const { installDir, ...rest } = n;
  await writeFile(config, edgeToml(opts.install === false ? rest : { ...rest, installDir }));
  return { ...n, config };
}

/** Every file under `dir` with its bytes (relative path → bytes), for byte-identical comparisons. */
/**
 * What a runtime install dir serves: its files through the top-level links
 * (installRuntimeDir's layout), by path, without the private
 * `.autonomy-install` trees behind them.
 */
export async function snapshotInstall(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const walk = async (rel: string): Promise<void> => {
    for (const name of await readdir(join(dir, rel))) {
      if (rel === "" && name === ".autonomy-install") continue;
      const p = rel === "" ? name : `${rel}/${name}`;
      const st = await stat(join(dir, p));
      if (st.isDirectory()) await walk(p);
      else if (st.isFile()) out.set(p, await readFile(join(dir, p)));
    }
  };
  await walk("");
  return out;
}

export async function snapshotDir(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const e of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath, e.name);
    out.set(relative(dir, p), await readFile(p));
  }
  return out;
}
