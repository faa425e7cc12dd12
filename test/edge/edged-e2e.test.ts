// Two real edged processes on loopback (real store, ledger, executor, mTLS transport; certificates from src/pki),
// driven by the real edgectl: a sent segment arrives in the other node's store, set-bandwidth and an edit of
// edge.toml + SIGHUP change the rate without restart, a peer with another CA's certificate shows as refused,
// and the status counts reconcile with the ledger read after shutdown.
import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClient, createPeerTransport, openRelayLedger, openSegmentStore } from "../../src/edge/index.js";
import type { RelayStatusView } from "../../src/edge/index.js";
import { stateRootPaths } from "../../src/node/index.js";
import { initCa, issueCert, readTlsIdentity } from "../../src/pki/index.js";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import { edgedNodes, edgedToml, killEdged, spawnEdged, until } from "../helpers/edged-loopback.js";
import type { EdgedNode as Node } from "../helpers/edged-loopback.js";

const EDGED = join(REPO_ROOT, "src/cli/edged-main.ts");
const EDGECTL = join(REPO_ROOT, "src/cli/edgectl-main.ts");

const tomlOf = (n: Node, peer: Node, certs: string, bytesPerSecond: number): string => edgedToml(n, peer, certs, { successCondition: "one_peer", maxRetry: 3, bytesPerSecond });
const UNTIL_MS = 20_000;

describe("two edged on loopback", () => {
  let dir: string;
  let certs: string;
  let nodes: Node[] = [];
  const ctl = (n: Node, ...args: string[]) => runProcess(process.execPath, ["--import", "tsx", EDGECTL, "--socket", n.sock, ...args]);
  const status = (n: Node): Promise<RelayStatusView> => new ControlClient({ socketPath: n.sock }).status();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edged-e2e-"));
    ({ certs, nodes } = await edgedNodes(dir, ["edge-a", "edge-b"]));
    const [a, b] = nodes as [Node, Node];
    await writeFile(a.cfg, tomlOf(a, b, certs, 0));
    await writeFile(b.cfg, tomlOf(b, a, certs, 0));
    for (const n of nodes) spawnEdged(n, ["--import", "tsx", EDGED]);
    for (const n of nodes) await until(() => status(n), (s) => s.node_id === n.id, UNTIL_MS);
  }, 60_000);

  afterAll(async () => {
    killEdged(nodes);
    await rm(dir, { recursive: true, force: true });
  });

  it("edgectl relay send on one node: the segment arrives in the other's store and is acked", async () => {
    const [a, b] = nodes as [Node, Node];
    const file = join(dir, "payload.bin");
    const bytes = Buffer.from("segment relayed between two edged processes\n".repeat(100));
    await writeFile(file, bytes);
    const sent = await ctl(a, "relay", "send", file, "--json");
    expect(sent.code, sent.stderr + a.log).toBe(0);
    const id = (JSON.parse(sent.stdout) as { id: string }).id;
    expect(id).toBe(createHash("sha256").update(bytes).digest("hex"));
    const sa = await until(() => status(a), (s) => s.queue.acked === 1, UNTIL_MS);
    expect(sa.peers[0]).toMatchObject({ peer_id: "edge-b", queue: { acked: 1, total: 1 } });
    const sb = await until(() => status(b), (s) => s.store.segments === 1, UNTIL_MS);
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
    await writeFile(a.cfg, tomlOf(a, b, certs, 131072));
    a.child?.kill("SIGHUP");
    const s = await until(() => status(a), (x) => x.bandwidth.bytes_per_second === 131072, UNTIL_MS);
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
    const s = await until(() => status(b), (x) => x.refused_peers.some((r) => r.direction === "inbound"), UNTIL_MS);
    expect(s.refused_peers.find((r) => r.direction === "inbound")?.reason).toBe("UNKNOWN_CA");
    const text = await ctl(b, "relay", "status");
    expect(text.stdout).toContain("UNKNOWN_CA");
  }, 30_000);

  it("SIGTERM stops both with exit 0, and the last status reconciles with the ledger", async () => {
    const [a] = nodes as [Node, Node];
    const last = await status(a);
    for (const n of nodes) n.child?.kill("SIGTERM");
    for (const n of nodes) expect(await n.exited, n.log).toBe(0);
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
