/**
 * Tutorial 04's edge nodes: `edged run` and `edgectl` as child processes of
 * the built launchers (as an operator runs them); the one-shot steps
 * (`autonomy cert`, `edged precheck`) through the same library calls those
 * commands make, to keep `npm start` fast. Each node has its own edge.toml,
 * state root and OS-identity files the tutorial controls.
 */
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { initCa, issueCert } from "../pki/index.js";
import { runPrecheck } from "../edge/index.js";
import type { PrecheckResult } from "../edge/index.js";
import { EDGECTL_BIN, EDGED_BIN, startAutonomyChild } from "./children.js";
import type { AutonomyChild } from "./children.js";
import { StepFailed, TutorialAborted } from "./wait.js";

export interface EdgeNode {
  id: string;
  dir: string;
  stateRoot: string;
  config: string;
  socket: string;
  osRelease: string;
  kernelRelease: string;
  /** The relay receiver's port (peers that receive); undefined for a node that only sends. */
  port?: number;
}

export function edgeNode(dir: string, id: string, port?: number): EdgeNode {
  const home = join(dir, id);
  return {
    id, dir: home, stateRoot: join(home, "state"), config: join(home, "edge.toml"), socket: join(home, "run", "edged.sock"),
    osRelease: join(home, "os", "os-release"), kernelRelease: join(home, "os", "kernel-release"),
    ...(port !== undefined ? { port } : {}),
  };
}

export interface CliResult {
  code: number | null;
  /** stdout parsed as JSON (every command used here is run with --json). */
  doc: Record<string, unknown> | undefined;
  stderr: string;
}

/** Runs `node BIN ARGS` to completion (bounded), collecting its JSON answer. */
export function runCli(bin: string, args: string[], timeoutMs = 30_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => void (out += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => void (err = (err + c.toString("utf8")).slice(-4096)));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, doc: parseDoc(out), stderr: err });
    });
  });
}

function parseDoc(out: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(out) as unknown;
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Why a command failed, in one line: its JSON error if it printed one, else its last words. */
export function failureOf(r: CliResult): string {
  const code = typeof r.doc?.code === "string" ? `${r.doc.code}: ` : "";
  const msg = typeof r.doc?.message === "string" ? `${code}${r.doc.message}` : r.stderr.trim().split("\n").slice(-2).join(" ");
  return `exit ${r.code ?? "killed"}; ${msg || "(no output)"}`;
}

/** The fleet CA and one certificate per node (what `autonomy cert ca init` and `autonomy cert issue` do). */
export async function fleetCertificates(dir: string, nodes: EdgeNode[]): Promise<{ caDir: string; certDir: string }> {
  const caDir = join(dir, "ca");
  const certDir = join(dir, "certs");
  try {
    await initCa({ outDir: caDir });
    for (const n of nodes) await issueCert({ caDir, name: n.id, outDir: certDir, sans: ["127.0.0.1"] });
  } catch (e) {
    throw new StepFailed("fleet CA", e instanceof Error ? e.message : String(e));
  }
  return { caDir, certDir };
}

/**
 * The node's edge.toml: its identity, certificates, receiver, peers, a quick
 * relay schedule, and OS-identity files the tutorial controls. A receiver
 * lists its sender under [[peers]] too: it accepts segments only from
 * configured peers (403 UNKNOWN_PEER otherwise). `forward: false` turns off
 * `relay_activated_release`, so a receiver does not relay the release it
 * activated back to its sender.
 */
export function edgeToml(n: EdgeNode, certs: { caDir: string; certDir: string }, peers: EdgeNode[], opts: { forward: boolean }): string {
  const q = (s: string): string => JSON.stringify(s);
  const lines = [
    "config_version = 1",
    "[node]", `id = ${q(n.id)}`, `state_root = ${q(n.stateRoot)}`,
    "[transport]", `cert_file = ${q(join(certs.certDir, `${n.id}.crt`))}`, `key_file = ${q(join(certs.certDir, `${n.id}.key`))}`, `ca_file = ${q(join(certs.caDir, "ca.crt"))}`,
    ...(n.port !== undefined ? [`listen = "127.0.0.1:${n.port}"`] : []),
    "[relay]", `success_condition = "all_peers"`, `relay_activated_release = ${opts.forward}`,
    "[relay.retry]", "max_retry = 20", "backoff_initial_ms = 100", "backoff_max_ms = 1000",
    "[scheduler]", "schedule_interval_seconds = 0.2",
    "[bootstrap]", `os_release_file = ${q(n.osRelease)}`, `kernel_release_file = ${q(n.kernelRelease)}`,
    ...peers.flatMap((p) => ["[[peers]]", `id = ${q(p.id)}`, `address = "127.0.0.1:${p.port ?? 0}"`]),
  ];
  return `${lines.join("\n")}\n`;
}

/** Writes the files the node's OS identity is read from (its "installed OS"). */
export async function writeOsIdentity(n: EdgeNode, os: { id: string; version: string; kernel: string }): Promise<void> {
  await mkdir(join(n.dir, "os"), { recursive: true });
  await writeFile(n.osRelease, `ID=${os.id}\nVERSION_ID="${os.version}"\nPRETTY_NAME="${os.id} ${os.version}"\n`);
  await writeFile(n.kernelRelease, `${os.kernel}\n`);
}

/** What `edged precheck --config edge.toml` does (src/edge runPrecheck); anything but exit 0 is a failed step. */
export async function precheck(step: string, n: EdgeNode): Promise<PrecheckResult> {
  const r = await runPrecheck({ configPath: n.config });
  if (r.exitCode !== 0) throw new StepFailed(step, `edged precheck --config ${n.config}: exit ${r.exitCode}; ${r.checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.code ?? ""} ${c.detail}`).join("; ")}`);
  return r;
}

/** `edged run --config edge.toml --control-socket S`, ready when it logs `edged_started`. */
export async function startEdged(n: EdgeNode, signal?: AbortSignal): Promise<AutonomyChild> {
  try {
    return await startAutonomyChild({
      name: `${n.id}'s edged`, bin: EDGED_BIN, signal, timeoutMs: 20_000,
      args: ["run", "--config", n.config, "--control-socket", n.socket],
      readyWhen: (doc) => (doc.event === "edged_started" ? n.socket : undefined),
    });
  } catch (e) {
    // Ctrl-C stays what it is; a daemon that would not start is this step's failure, said with its last words.
    if (e instanceof TutorialAborted) throw e;
    throw new StepFailed("edged", e instanceof Error ? e.message : String(e));
  }
}

/** `edgectl --socket S relay status --json`. */
export async function relayStatus(step: string, n: EdgeNode): Promise<Record<string, unknown>> {
  const r = await runCli(EDGECTL_BIN, ["--socket", n.socket, "relay", "status", "--json"]);
  if (r.code !== 0 || r.doc === undefined) throw new StepFailed(step, `edgectl relay status (${n.id}): ${failureOf(r)}`);
  return r.doc;
}
