// edged in-process with its REAL relay parts (store, LMDB ledger, executor, mTLS transport and receiver,
// certificates from src/pki) and edge.toml files, read through the control socket as `edgectl relay status`
// reads it: what the SENDER sees when a receiver refuses it (403 UNKNOWN_PEER during a rolling [[peers]]
// change), and what happens to deliveries owed to a peer dropped from edge.toml across a restart.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ControlClient, loadEdgeConfig, openRelayLedger, openRelayParts } from "../../src/edge/index.js";
import type { RelayStatusView } from "../../src/edge/index.js";
import { statusText } from "../../src/cli/commands/edgectl-render.js";
import { startEdgeDaemon } from "../../src/edge/daemon/daemon.js";
import type { EdgeDaemon } from "../../src/edge/daemon/daemon.js";
import { freeLoopbackPort } from "../../src/lib/index.js";
import { stateRootPaths } from "../../src/node/index.js";
import { createLogger } from "../../src/observability/index.js";
import { initCa, issueCert } from "../../src/pki/index.js";

interface Node {
  id: string;
  cfg: string;
  sock: string;
  root: string;
  port: number;
  daemon?: EdgeDaemon;
}

const log = createLogger({ name: "test.sender-status", level: "silent" });

async function until<T>(what: string, f: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  let last: T | undefined;
  for (;;) {
    last = await f();
    if (ok(last)) return last;
    if (Date.now() > end) throw new Error(`${what}: not reached; last: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("the sender's view of refusals and removed peers", () => {
  let dir: string;
  let certs: string;
  const nodes = new Map<string, Node>();
  const node = (id: string): Node => nodes.get(id) as Node;

  const toml = (n: Node, peers: string[], over: { success?: string; maxRetry?: number } = {}): string => [
    "config_version = 1",
    "[node]", `id = "${n.id}"`, `state_root = "${n.root}"`,
    "[transport]", `cert_file = "${join(certs, `${n.id}.crt`)}"`, `key_file = "${join(certs, `${n.id}.key`)}"`, `ca_file = "${join(certs, "ca.crt")}"`, `listen = "127.0.0.1:${n.port}"`,
    "[relay]", `success_condition = "${over.success ?? "one_peer"}"`,
    "[relay.retry]", `max_retry = ${over.maxRetry ?? 1000}`, "backoff_initial_ms = 100", "backoff_max_ms = 200",
    "[scheduler]", "schedule_interval_seconds = 0.1",
    ...peers.flatMap((p) => ["[[peers]]", `id = "${p}"`, `address = "127.0.0.1:${node(p).port}"`]),
    "",
  ].join("\n");

  const start = async (n: Node, peers: string[], over: { success?: string; maxRetry?: number } = {}): Promise<void> => {
    await writeFile(n.cfg, toml(n, peers, over));
    const config = await loadEdgeConfig(n.cfg);
    n.daemon = await startEdgeDaemon(config, { controlSocket: n.sock, parts: openRelayParts, loadConfig: loadEdgeConfig, log, watchConfig: false, stopGraceMs: 0 });
  };
  const stop = async (n: Node): Promise<void> => {
    await n.daemon?.stop();
    delete n.daemon;
  };
  const status = (n: Node): Promise<RelayStatusView> => new ControlClient({ socketPath: n.sock }).status();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "sender-status-"));
    certs = join(dir, "certs");
    await initCa({ outDir: certs });
    for (const id of ["edge-a", "edge-b", "edge-c"]) {
      await issueCert({ caDir: certs, name: id });
      const root = join(dir, id);
      await mkdir(root, { recursive: true });
      nodes.set(id, { id, cfg: join(dir, `${id}.toml`), sock: join(dir, `${id}.sock`), root, port: await freeLoopbackPort() });
    }
  });
  afterEach(async () => {
    for (const n of nodes.values()) await stop(n);
    for (const n of nodes.values()) await rm(n.root, { recursive: true, force: true }).then(() => mkdir(n.root, { recursive: true }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("attack (rolling [[peers]] change): a receiver not yet restarted onto a list naming this node answers 403 UNKNOWN_PEER — the SENDER's status shows it per peer (also after the sender restarts), the delivery is retried, not dead-lettered, and goes through once the receiver lists the sender", async () => {
    const [a, b] = [node("edge-a"), node("edge-b")];
    await start(b, ["edge-c"]); // b does not list a yet
    await start(a, ["edge-b"]);
    const seg = await new ControlClient({ socketPath: a.sock }).enqueue(randomBytes(256));
    const seen = await until("a 403 UNKNOWN_PEER in a's status", () => status(a), (s) => (s.peers[0]?.last_error?.message ?? "").includes("UNKNOWN_PEER") && s.peers[0]?.queue.failed === 1);
    expect(seen.peers[0]).toMatchObject({ peer_id: "edge-b", queue: { failed: 1, deadletter: 0, acked: 0 }, last_error: { code: "RELAY_PEER_REJECTED", segment_id: seg.id, peer_id: "edge-b" } });
    expect(seen.last_error).toMatchObject({ code: "RELAY_PEER_REJECTED", peer_id: "edge-b" });
    expect(seen.refused_peers).toEqual(expect.arrayContaining([expect.objectContaining({ direction: "outbound", peer: "edge-b", reason: "UNKNOWN_PEER" })]));

    // The sender restarts: the per-peer last error comes from the durable ledger, not from memory.
    await stop(a);
    await start(a, ["edge-b"]);
    const after = await status(a);
    expect(after.peers[0]?.last_error).toMatchObject({ code: "RELAY_PEER_REJECTED", segment_id: seg.id });
    expect(after.peers[0]?.last_error?.message).toContain("UNKNOWN_PEER");

    // The receiver restarts onto the new list: the retried delivery is acknowledged, no operator needed.
    await stop(b);
    await start(b, ["edge-a", "edge-c"]);
    await until("the delivery acked", () => status(a), (s) => s.peers[0]?.queue.acked === 1);
    await stop(a);
    const ledger = await openRelayLedger(stateRootPaths(a.root).relayLedger);
    try {
      const d = ledger.delivery(seg.id, "edge-b");
      const outcomes = d?.history.map((h) => `${h.outcome ?? "?"}:${h.error?.code ?? ""}`) ?? [];
      expect(outcomes.filter((o) => o === "failed:RELAY_PEER_REJECTED").length).toBeGreaterThanOrEqual(1);
      expect(outcomes).not.toContain("deadletter:RELAY_PEER_REJECTED");
      expect(outcomes.at(-1)).toBe("acked:");
    } finally {
      await ledger.close();
    }
  });

  it("attack (rolling [[peers]] change): 403 UNKNOWN_PEER is dead-lettered only after max_retry attempts, like any other failure", async () => {
    const [a, b] = [node("edge-a"), node("edge-b")];
    await start(b, ["edge-c"]);
    await start(a, ["edge-b"], { maxRetry: 3 });
    const seg = await new ControlClient({ socketPath: a.sock }).enqueue(randomBytes(64));
    await until("dead-lettered", () => status(a), (s) => s.peers[0]?.queue.deadletter === 1);
    const dl = await new ControlClient({ socketPath: a.sock }).deadletterInspect(seg.id, "edge-b");
    expect(dl.attempts).toBe(3);
    expect(dl.history.map((h) => h.error?.code)).toEqual(["RELAY_PEER_REJECTED", "RELAY_PEER_REJECTED", "RELAY_PEER_REJECTED"]);
  });

  it("attack (config change): a peer dropped from edge.toml across a restart — `edgectl relay status` shows the settled deliveries (peer_removed, not acked), the all_peers segment counts as delivered, and the overall queue is the sum of the listed peers", async () => {
    const [a, b, c] = [node("edge-a"), node("edge-b"), node("edge-c")];
    await start(b, ["edge-a"]);
    await start(a, ["edge-b", "edge-c"], { success: "all_peers" }); // edge-c is not running: unreachable
    const client = new ControlClient({ socketPath: a.sock });
    const shared = await client.enqueue(randomBytes(128));
    await until("b acked", () => status(a), (s) => s.peers.find((p) => p.peer_id === "edge-b")?.queue.acked === 1);
    await stop(a);
    await start(a, ["edge-b"], { success: "all_peers" }); // edge-c decommissioned
    const s = await status(a);
    expect(s.peers.map((p) => p.peer_id)).toEqual(["edge-b"]);
    const sum = s.peers.reduce((n, p) => n + p.queue.total, 0);
    expect({ overall: s.queue.total, sum, acked: s.queue.acked }).toEqual({ overall: 1, sum: 1, acked: 1 });
    expect(s.peer_settlements).toMatchObject([{ outcome: "peer_removed", peer_id: "edge-c", count: 1, unacked: 1, items: [{ segment_id: shared.id, peer_id: "edge-c", state: "failed" }] }]);
    expect(statusText(s)).toContain("removed peer edge-c: 1 deliveries settled (peer_removed; 1 never acknowledged)");
    expect(c.daemon).toBeUndefined();
    await stop(a);
    const ledger = await openRelayLedger(stateRootPaths(a.root).relayLedger);
    try {
      expect(ledger.segment(shared.id)).toMatchObject({ peers: ["edge-b"], delivered_at: expect.any(String) as string });
      expect(ledger.summary().delivered_segments).toBe(1);
    } finally {
      await ledger.close();
    }
  });
});
