/**
 * The relay labs' launcher: a fleet CA and a certificate per node (src/pki),
 * an edge.toml per node, real `edged run` children talking mTLS to each
 * other on loopback, each driven through its control socket. When a suite
 * impairs, every sender → receiver link goes through its own impairment
 * proxy (impair-proxy.ts) and the sender's edge.toml names the proxy as the
 * peer's address (the peer's identity is its certificate name, so mTLS still
 * runs end to end between the two daemons). Everything started here is
 * stopped by `close()`, and SIGKILLed when this process exits.
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { openSegmentStore } from "../../edge/index.js";
import { freeLoopbackPort } from "../../lib/index.js";
import { stateRootPaths } from "../../node/index.js";
import { initCa, issueCert } from "../../pki/index.js";
import { startImpairProxy } from "../impair-proxy.js";
import type { ImpairProxy } from "../impair-proxy.js";
import type { EdgeSuiteContext } from "../suite.js";
import { EdgedProcess } from "./edged-process.js";
import { readInbox } from "./inbox.js";
import type { LabInboxEntry } from "./inbox.js";

type Scalar = number | boolean | string;
/** edge.toml sections to override, by their dotted name ("relay", "relay.retry", "scheduler", "storage", "bandwidth"). */
export type TomlOverrides = Partial<Record<"relay" | "relay.retry" | "scheduler" | "storage" | "bandwidth", Record<string, Scalar>>>;

export interface NodeSpec {
  id: string;
  /** Runs a relay receiver (a peer others send to). */
  receive?: boolean;
  /** The nodes it sends to. */
  peers?: readonly string[];
  toml?: TomlOverrides;
}

export interface LabOptions {
  /** A name for the lab's folder under the suite's workDir. */
  name: string;
  nodes: readonly NodeSpec[];
  /** Put an impairment proxy on every sender → receiver link. */
  impair?: boolean;
}

/**
 * The lab's defaults: fast scheduling and short backoff so a reduced run takes seconds, not minutes.
 * A suite's overrides win; whatever ran is in each node's edge.toml in the scratch folder.
 */
export const LAB_DEFAULTS: TomlOverrides = {
  // No release relaying: the labs' nodes have no activated release, and their inboxes carry only the suites' data.
  relay: { dial_timeout_seconds: 2, ack_timeout_seconds: 10, success_condition: "one_peer", relay_activated_release: false, activate_relayed_releases: false },
  "relay.retry": { max_retry: 3, backoff_initial_ms: 50, backoff_max_ms: 400, jitter: 0.2 },
  scheduler: { schedule_interval_seconds: 0.1, max_concurrent_relays: 8, max_segments_per_scheduling_round: 1000 },
};

export class LabNode {
  constructor(
    readonly spec: NodeSpec,
    readonly dir: string,
    readonly configPath: string,
    readonly stateRoot: string,
    readonly proc: EdgedProcess,
    /** host:port of its receiver, when it receives. */
    readonly listen: string | undefined,
    private overrides: TomlOverrides,
    private readonly peerAddresses: { id: string; address: string }[],
    private readonly certDir: string,
  ) {}

  get id(): string {
    return this.spec.id;
  }

  get ctl(): EdgedProcess["ctl"] {
    return this.proc.ctl;
  }

  /** Rewrites edge.toml with these sections changed (a hot-reload test then SIGHUPs). */
  async rewrite(change: TomlOverrides): Promise<void> {
    const merged: TomlOverrides = { ...this.overrides };
    for (const [k, v] of Object.entries(change) as [keyof TomlOverrides, Record<string, Scalar>][]) merged[k] = { ...(merged[k] ?? {}), ...v };
    this.overrides = merged;
    await writeFile(this.configPath, renderToml(this.id, this.stateRoot, this.certDir, this.listen, this.peerAddresses, merged));
  }

  /** The segments in its store (read from disk; call after `proc.stop`). */
  async storedSegments(): Promise<string[]> {
    const store = await openSegmentStore({ dir: stateRootPaths(this.stateRoot).edgeSegments, ceilingBytes: Number.MAX_SAFE_INTEGER });
    return store.list().map((s) => s.id);
  }

  /** Its receiver's inbox as the ledger holds it (read after `proc.stop`). */
  inbox(): Promise<LabInboxEntry[]> {
    return readInbox(this.stateRoot);
  }
}

export class EdgeLab {
  private constructor(readonly nodes: Map<string, LabNode>, readonly proxies: Map<string, ImpairProxy>) {}

  node(id: string): LabNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no lab node ${id}`);
    return n;
  }

  /** The proxy on the link from → to (impaired labs only). */
  proxy(from: string, to: string): ImpairProxy {
    const p = this.proxies.get(`${from}->${to}`);
    if (p === undefined) throw new Error(`no proxy on ${from} -> ${to}`);
    return p;
  }

  static async open(ctx: EdgeSuiteContext, o: LabOptions): Promise<EdgeLab> {
    const dir = join(ctx.workDir, o.name);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const certDir = join(dir, "certs");
    await initCa({ outDir: certDir });
    const ports = new Map<string, number>();
    for (const n of o.nodes) {
      await issueCert({ caDir: certDir, name: n.id, outDir: certDir, sans: ["127.0.0.1", "localhost"] });
      if (n.receive) ports.set(n.id, await freeLoopbackPort());
    }
    // A receiver accepts configured peers only: it lists every node that sends to it. A sender that does not
    // receive gets a loopback port nothing listens on as its address there (the receiver never sends to it).
    const senders = new Map<string, string[]>();
    for (const n of o.nodes) for (const p of n.peers ?? []) senders.set(p, [...(senders.get(p) ?? []), n.id]);
    for (const n of o.nodes) if (!ports.has(n.id) && (n.peers ?? []).length > 0) ports.set(`${n.id}#unused`, await freeLoopbackPort());
    const nodesReceiving = new Set(o.nodes.filter((n) => n.receive).map((n) => n.id));
    const proxies = new Map<string, ImpairProxy>();
    const nodes = new Map<string, LabNode>();
    const lab = new EdgeLab(nodes, proxies);
    try {
      for (const n of o.nodes) {
        const peers: { id: string; address: string }[] = [];
        for (const from of senders.get(n.id) ?? []) {
          if ((n.peers ?? []).includes(from)) continue;
          peers.push({ id: from, address: `127.0.0.1:${ports.get(from) ?? ports.get(`${from}#unused`) ?? 9}` });
        }
        for (const p of n.peers ?? []) {
          const port = nodesReceiving.has(p) ? ports.get(p) : undefined;
          if (port === undefined) throw new Error(`lab node ${n.id} sends to ${p}, which does not receive`);
          if (o.impair) {
            const proxy = await startImpairProxy({ host: "127.0.0.1", port });
            proxies.set(`${n.id}->${p}`, proxy);
            peers.push({ id: p, address: proxy.address });
          } else peers.push({ id: p, address: `127.0.0.1:${port}` });
        }
        const nodeDir = join(dir, n.id);
        await mkdir(nodeDir, { recursive: true, mode: 0o700 });
        const stateRoot = join(nodeDir, "state");
        await mkdir(stateRoot, { recursive: true, mode: 0o700 });
        const listen = ports.has(n.id) ? `127.0.0.1:${ports.get(n.id) ?? 0}` : undefined;
        const overrides = mergeOverrides(LAB_DEFAULTS, n.toml ?? {});
        const configPath = join(nodeDir, "edge.toml");
        await writeFile(configPath, renderToml(n.id, stateRoot, certDir, listen, peers, overrides));
        const proc = new EdgedProcess(n.id, configPath, join(nodeDir, "ctl.sock"), join(nodeDir, "edged.log"));
        nodes.set(n.id, new LabNode(n, nodeDir, configPath, stateRoot, proc, listen, overrides, peers, certDir));
      }
      // Receivers first: a sender's first push then finds its peer listening (unless the suite wants otherwise).
      const order = [...nodes.values()].sort((a, b) => Number(Boolean(b.spec.receive)) - Number(Boolean(a.spec.receive)));
      for (const n of order) await n.proc.start();
      ctx.log(`${o.name}: ${[...nodes.values()].map((n) => `${n.id} pid ${n.proc.pid}`).join(", ")}${o.impair ? `, ${proxies.size} impairment prox${proxies.size === 1 ? "y" : "ies"}` : ""}`);
      return lab;
    } catch (e) {
      await lab.close();
      throw e;
    }
  }

  async close(): Promise<void> {
    for (const n of this.nodes.values()) await n.proc.dispose();
    for (const p of this.proxies.values()) await p.close();
  }
}

function mergeOverrides(a: TomlOverrides, b: TomlOverrides): TomlOverrides {
  const out: TomlOverrides = { ...a };
  for (const [k, v] of Object.entries(b) as [keyof TomlOverrides, Record<string, Scalar>][]) out[k] = { ...(out[k] ?? {}), ...v };
  return out;
}

function tomlValue(v: Scalar): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/** edge.toml v1 for one lab node (docs/edge-config.md). */
export function renderToml(id: string, stateRoot: string, certDir: string, listen: string | undefined, peers: readonly { id: string; address: string }[], o: TomlOverrides): string {
  const lines = [
    "config_version = 1", "", "[node]", `id = ${JSON.stringify(id)}`, `state_root = ${JSON.stringify(stateRoot)}`, "",
    "[transport]", `cert_file = ${JSON.stringify(join(certDir, `${id}.crt`))}`, `key_file = ${JSON.stringify(join(certDir, `${id}.key`))}`, `ca_file = ${JSON.stringify(join(certDir, "ca.crt"))}`,
    ...(listen === undefined ? [] : [`listen = ${JSON.stringify(listen)}`]),
  ];
  for (const section of ["relay", "relay.retry", "scheduler", "storage", "bandwidth"] as const) {
    const kv = o[section];
    if (kv === undefined || Object.keys(kv).length === 0) continue;
    lines.push("", `[${section}]`, ...Object.entries(kv).map(([k, v]) => `${k} = ${tomlValue(v)}`));
  }
  for (const p of peers) lines.push("", "[[peers]]", `id = ${JSON.stringify(p.id)}`, `address = ${JSON.stringify(p.address)}`);
  return `${lines.join("\n")}\n`;
}
