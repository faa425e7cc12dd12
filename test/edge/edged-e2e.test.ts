// Two real edged processes on loopback (real store, ledger, executor, mTLS transport; certificates from src/pki),
// driven by the real edgectl: a sent segment arrives in the other node's store, set-bandwidth and an edit of
// edge.toml + SIGHUP change the rate without restart, a peer with another CA's certificate shows as refused,
// and the status counts reconcile with the ledger read after shutdown.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClient, createPeerTransport, openRelayLedger, openSegmentStore } from "../../src/edge/index.js";
import type { RelayStatusView } from "../../src/edge/index.js";
import { freeLoopbackPort } from "../../src/lib/index.js";
import { stateRootPaths } from "../../src/node/index.js";
import { initCa, issueCert, readTlsIdentity } from "../../src/pki/index.js";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";

const EDGED = join(REPO_ROOT, "src/cli/edged-main.ts");
const EDGECTL = join(REPO_ROOT, "src/cli/edgectl-main.ts");

interface Node {
  id: string;
  cfg: string;
  sock: string;
  root: string;
  port: number;
  child?: ChildProcess;
  stderr: string;
  exited?: Promise<number | null>;
}

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
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

function toml(n: Node, peer: Node, certs: string, bytesPerSecond: number): string {
  return [
    "config_version = 1",
    "[node]", `id = "${n.id}"`, `state_root = "${n.root}"`,
    "[transport]", `cert_file = "${join(certs, `${n.id}.crt`)}"`, `key_file = "${join(certs, `${n.id}.key`)}"`, `ca_file = "${join(certs, "ca.crt")}"`, `listen = "127.0.0.1:${n.port}"`,
    "[relay]", 'success_condition = "one_peer"',
    "[relay.retry]", "max_retry = 3", "backoff_initial_ms = 100", "backoff_max_ms = 500",
    "[scheduler]", "schedule_interval_seconds = 0.2",
    "[bandwidth]", `bytes_per_second = ${bytesPerSecond}`,
    "[[peers]]", `id = "${peer.id}"`, `address = "127.0.0.1:${peer.port}"`,
    "",
  ].join("\n");
}

describe("two edged on loopback", () => {
  let dir: string;
  let certs: string;
  const nodes: Node[] = [];
  const ctl = (n: Node, ...args: string[]) => runProcess(process.execPath, ["--import", "tsx", EDGECTL, "--socket", n.sock, ...args]);
  const status = (n: Node): Promise<RelayStatusView> => new ControlClient({ socketPath: n.sock }).status();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edged-e2e-"));
    certs = join(dir, "certs");
    await initCa({ outDir: certs });
    for (const id of ["edge-a", "edge-b"]) {
      await issueCert({ caDir: certs, name: id });
      const root = join(dir, id);
      await mkdir(root, { recursive: true });
      nodes.push({ id, cfg: join(dir, `${id}.toml`), sock: join(dir, `${id}.sock`), root, port: await freeLoopbackPort(), stderr: "" });
    }
    const [a, b] = nodes as [Node, Node];
    await writeFile(a.cfg, toml(a, b, certs, 0));
    await writeFile(b.cfg, toml(b, a, certs, 0));
    for (const n of nodes) {
      const child = spawn(process.execPath, ["--import", "tsx", EDGED, "run", "--config", n.cfg, "--control-socket", n.sock], { stdio: ["ignore", "ignore", "pipe"] });
      child.stderr.on("data", (d: Buffer) => (n.stderr += d.toString()));
      n.child = child;
      n.exited = new Promise((r) => child.once("exit", (code) => r(code)));
    }
    for (const n of nodes) await until(() => status(n), (s) => s.node_id === n.id);
  }, 60_000);

  afterAll(async () => {
    for (const n of nodes) if (n.child && n.child.exitCode === null) n.child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  it("edgectl relay send on one node: the segment arrives in the other's store and is acked", async () => {
    const [a, b] = nodes as [Node, Node];
    const file = join(dir, "payload.bin");
    const bytes = Buffer.from("segment relayed between two edged processes\n".repeat(100));
    await writeFile(file, bytes);
    const sent = await ctl(a, "relay", "send", file, "--json");
    expect(sent.code, sent.stderr + a.stderr).toBe(0);
    const id = (JSON.parse(sent.stdout) as { id: string }).id;
    expect(id).toBe(createHash("sha256").update(bytes).digest("hex"));
    const sa = await until(() => status(a), (s) => s.queue.acked === 1);
    expect(sa.peers[0]).toMatchObject({ peer_id: "edge-b", queue: { acked: 1, total: 1 } });
    const sb = await until(() => status(b), (s) => s.store.segments === 1);
    expect(sb.store.used_bytes).toBe(bytes.byteLength);
    const text = await ctl(a, "relay", "status");
    expect(text.stdout).toMatch(/acked 1/);
  }, 60_000);

  it("set-bandwidth (applied=true) and an edit of edge.toml + SIGHUP change the rate without restart", async () => {
    const [a, b] = nodes as [Node, Node];
    const set = await ctl(a, "relay", "config", "set-bandwidth", "--bytes-per-second", "65536");
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/^applied=true/);
    expect((await status(a)).bandwidth.bytes_per_second).toBe(65536);
    await writeFile(a.cfg, toml(a, b, certs, 131072));
    a.child?.kill("SIGHUP");
    const s = await until(() => status(a), (x) => x.bandwidth.bytes_per_second === 131072);
    expect(s.config.config_reload_error).toBeNull();
    expect(a.child?.exitCode).toBeNull();
  }, 30_000);

  it("attack (trust): a peer with a certificate from another CA is refused, and the refusal shows in edgectl relay status", async () => {
    const [, b] = nodes as [Node, Node];
    const rogue = join(dir, "rogue");
    await initCa({ outDir: rogue, name: "another CA" });
    await issueCert({ caDir: rogue, name: "edge-a" });
    const tls = await readTlsIdentity({ certFile: join(rogue, "edge-a.crt"), keyFile: join(rogue, "edge-a.key"), caFile: join(certs, "ca.crt") });
    const t = createPeerTransport({ tls, dialTimeoutMs: 2_000, ackTimeoutMs: 2_000 });
    const bytes = new TextEncoder().encode("from a stranger");
    await expect(t.push({ id: "edge-b", address: `127.0.0.1:${b.port}` }, { id: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength, kind: "data" }, bytes)).rejects.toBeDefined();
    await t.close();
    const s = await until(() => status(b), (x) => x.refused_peers.some((r) => r.direction === "inbound"));
    expect(s.refused_peers.find((r) => r.direction === "inbound")?.reason).toBe("UNKNOWN_CA");
    const text = await ctl(b, "relay", "status");
    expect(text.stdout).toContain("UNKNOWN_CA");
  }, 30_000);

  it("SIGTERM stops both with exit 0, and the last status reconciles with the ledger", async () => {
    const [a] = nodes as [Node, Node];
    const last = await status(a);
    for (const n of nodes) n.child?.kill("SIGTERM");
    for (const n of nodes) expect(await n.exited, n.stderr).toBe(0);
    const ledger = await openRelayLedger(stateRootPaths(a.root).relayLedger);
    try {
      const sum = ledger.summary();
      expect(sum.queue).toEqual(last.queue);
      expect(sum.peers["edge-b"]?.queue).toMatchObject({ acked: last.peers[0]?.queue.acked });
    } finally {
      await ledger.close();
    }
    const store = await openSegmentStore({ dir: stateRootPaths(nodes[1]?.root ?? "").edgeSegments, ceilingBytes: 1 << 30 });
    expect(store.list()).toHaveLength(1);
    expect(await readFile(join(dir, "payload.bin"))).toEqual(Buffer.from(await store.get(store.list()[0]?.id ?? "")));
  }, 30_000);
});
