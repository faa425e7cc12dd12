/**
 * Two real `edged run` processes (a sender and a receiver) on loopback with
 * mTLS certificates from src/pki, for the SIGKILL chaos test: the daemon is
 * bundled once with esbuild (our code in one file, dependencies from
 * node_modules) so a restart costs node's start, not tsx's compilation.
 */
import { copyFile, mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { buildSync } from "esbuild";
import { ControlClient } from "../../../src/edge/index.js";
import { freeLoopbackPort } from "../../../src/lib/index.js";
import { initCa, issueCert } from "../../../src/pki/index.js";
import { REPO_ROOT } from "../../helpers/cli.js";
import { ChaosChild } from "./chaos.js";

export interface EdgedNode {
  id: string;
  root: string;
  cfg: string;
  sock: string;
  port: number;
  proc?: ChaosChild;
  /** The last lines of stderr of every run, for a failure message. */
  log: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Bundles src/cli/edged-main.ts under `root` (beside a copy of package.json, which src/lib/version.ts reads at ../../). */
export async function bundleEdged(root: string): Promise<string> {
  const out = join(root, "bundle", "child", "edged.mjs");
  await mkdir(dirname(out), { recursive: true });
  await copyFile(join(REPO_ROOT, "package.json"), join(root, "package.json"));
  // Dependencies stay external (lmdb loads a native addon relative to its own files); they resolve through this link.
  await symlink(join(REPO_ROOT, "node_modules"), join(root, "node_modules"), "dir");
  buildSync({ entryPoints: [join(REPO_ROOT, "src/cli/edged-main.ts")], bundle: true, platform: "node", format: "esm", target: "node20", outfile: out, logLevel: "error", packages: "external" });
  return out;
}

function toml(n: EdgedNode, peer: EdgedNode, certs: string): string {
  return [
    "config_version = 1",
    "[node]", `id = "${n.id}"`, `state_root = "${n.root}"`,
    "[transport]", `cert_file = "${join(certs, `${n.id}.crt`)}"`, `key_file = "${join(certs, `${n.id}.key`)}"`, `ca_file = "${join(certs, "ca.crt")}"`,
    `listen = "127.0.0.1:${n.port}"`,
    "[relay]", 'success_condition = "one_peer"', "dial_timeout_seconds = 2", "ack_timeout_seconds = 10",
    // Kills fail attempts; the budget is far above what a chaos run can use, so a DEADLETTER is a finding, not noise.
    "[relay.retry]", "max_retry = 1000", "backoff_initial_ms = 50", "backoff_max_ms = 300",
    // Far above what a run stores: an evicted acked segment would read as lost.
    "[storage]", "ceiling_bytes = 8589934592",
    "[scheduler]", "schedule_interval_seconds = 0.05",
    "[[peers]]", `id = "${peer.id}"`, `address = "127.0.0.1:${peer.port}"`,
    "",
  ].join("\n");
}

/** A CA, a certificate for each node, and an edge.toml for each naming the other as its only peer. */
export async function setUpPair(dir: string): Promise<[EdgedNode, EdgedNode]> {
  const certs = join(dir, "certs");
  await initCa({ outDir: certs });
  const nodes: EdgedNode[] = [];
  for (const id of ["sender", "receiver"]) {
    await issueCert({ caDir: certs, name: id });
    const root = join(dir, id);
    await mkdir(root, { recursive: true });
    nodes.push({ id, root, cfg: join(dir, `${id}.toml`), sock: join(dir, `${id}.sock`), port: await freeLoopbackPort(), log: "" });
  }
  const [s, r] = nodes as [EdgedNode, EdgedNode];
  await writeFile(s.cfg, toml(s, r, certs));
  await writeFile(r.cfg, toml(r, s, certs));
  return [s, r];
}

export function client(n: EdgedNode, timeoutMs = 15_000): ControlClient {
  return new ControlClient({ socketPath: n.sock, timeoutMs });
}

/** Starts `edged run` and resolves once its control socket answers with this node's id. */
export async function startEdged(n: EdgedNode, bundle: string, timeoutMs = 60_000): Promise<void> {
  const proc = new ChaosChild([bundle, "run", "--config", n.cfg, "--control-socket", n.sock], { cwd: REPO_ROOT });
  n.proc = proc;
  const end = Date.now() + timeoutMs;
  const ctl = client(n, 2_000);
  for (;;) {
    if (!proc.alive) throw new Error(`edged ${n.id} exited while starting: ${proc.stderr}`);
    const s = await ctl.status().catch(() => undefined);
    if (s?.node_id === n.id) return;
    if (Date.now() > end) throw new Error(`edged ${n.id} did not answer on ${n.sock} within ${timeoutMs} ms: ${proc.stderr}`);
    await sleep(25);
  }
}

/** SIGKILL (if alive); true when a live process was killed. Keeps the tail of its stderr. */
export async function killEdged(n: EdgedNode): Promise<boolean> {
  const p = n.proc;
  if (p === undefined) return false;
  const live = p.alive;
  await p.kill();
  n.log = (n.log + p.stderr).slice(-4_000);
  return live;
}
