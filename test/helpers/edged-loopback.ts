/**
 * Real `edged run` processes on loopback for the end-to-end edge tests
 * (edged-e2e, edged-release-relay): a fleet CA and one certificate per node
 * (src/pki), a state root and a free port each, an edge.toml naming the other
 * node as its peer, the child's stderr collected, and a wait for a condition.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { freeLoopbackPort } from "../../src/lib/index.js";
import { initCa, issueCert } from "../../src/pki/index.js";

export interface EdgedNode {
  id: string;
  cfg: string;
  sock: string;
  root: string;
  port: number;
  child?: ChildProcess;
  /** Everything the child wrote on stderr (its JSON log). */
  log: string;
  /** The child's exit code, once it exits. */
  exited?: Promise<number | null>;
}

/** Polls `f` every 150 ms until `ok` holds (a throw counts as "not yet"); fails after `ms` (default 30 s) with the last value. */
export async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  for (;;) {
    try {
      last = await f();
      if (ok(last)) return last;
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`condition not reached; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 150));
  }
}

/** A fleet CA in `dir/certs`, and per id a certificate (with `sans`), a state root `dir/<id>`, `dir/<id>.toml`, `dir/<id>.sock` and a free port. */
export async function edgedNodes(dir: string, ids: readonly string[], o: { sans?: string[] } = {}): Promise<{ certs: string; nodes: EdgedNode[] }> {
  const certs = join(dir, "certs");
  await initCa({ outDir: certs });
  const nodes: EdgedNode[] = [];
  for (const id of ids) {
    await issueCert({ caDir: certs, name: id, ...(o.sans ? { sans: o.sans } : {}) });
    const root = join(dir, id);
    await mkdir(root, { recursive: true });
    nodes.push({ id, cfg: join(dir, `${id}.toml`), sock: join(dir, `${id}.sock`), root, port: await freeLoopbackPort(), log: "" });
  }
  return { certs, nodes };
}

export interface EdgedTomlOptions {
  successCondition: "one_peer" | "all_peers";
  maxRetry: number;
  /** `relay.relay_activated_release`; left out when undefined. */
  relayActivatedRelease?: boolean;
  /** `[bandwidth] bytes_per_second`; no [bandwidth] table when undefined. */
  bytesPerSecond?: number;
}

/** edge.toml for `n` with `peer` as its only peer: mTLS from `certs`, fast retries (100..500 ms) and a 0.2 s scheduler. */
export function edgedToml(n: EdgedNode, peer: EdgedNode, certs: string, o: EdgedTomlOptions): string {
  return [
    "config_version = 1",
    "[node]", `id = "${n.id}"`, `state_root = "${n.root}"`,
    "[transport]", `cert_file = "${join(certs, `${n.id}.crt`)}"`, `key_file = "${join(certs, `${n.id}.key`)}"`, `ca_file = "${join(certs, "ca.crt")}"`, `listen = "127.0.0.1:${n.port}"`,
    "[relay]", `success_condition = "${o.successCondition}"`, ...(o.relayActivatedRelease === undefined ? [] : [`relay_activated_release = ${o.relayActivatedRelease}`]),
    "[relay.retry]", `max_retry = ${o.maxRetry}`, "backoff_initial_ms = 100", "backoff_max_ms = 500",
    "[scheduler]", "schedule_interval_seconds = 0.2",
    ...(o.bytesPerSecond === undefined ? [] : ["[bandwidth]", `bytes_per_second = ${o.bytesPerSecond}`]),
    "[[peers]]", `id = "${peer.id}"`, `address = "127.0.0.1:${peer.port}"`,
    "",
  ].join("\n");
}

/** Spawns `node <launcher…> run --config <cfg> --control-socket <sock>` for `n`, collecting its stderr into `n.log`. */
export function spawnEdged(n: EdgedNode, launcher: readonly string[]): void {
  const child = spawn(process.execPath, [...launcher, "run", "--config", n.cfg, "--control-socket", n.sock], { stdio: ["ignore", "ignore", "pipe"] });
  child.stderr.on("data", (d: Buffer) => (n.log += d.toString()));
  n.child = child;
  n.exited = new Promise((r) => child.once("exit", (code) => r(code)));
}

/** SIGKILLs every node's child still running (after a failed test). */
export function killEdged(nodes: readonly EdgedNode[]): void {
  for (const n of nodes) if (n.child && n.child.exitCode === null) n.child.kill("SIGKILL");
}
