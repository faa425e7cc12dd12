// Two real edged processes on loopback (built launchers; `npm test` builds first) relay a real signed release:
// edge-a's newly active release reaches edge-b, which verifies it under its OWN trust root and activates it
// (no control plane). Then a peer with a valid fleet certificate pushes release segments edge-b must refuse:
// one with a tampered byte and one with a stale statement (an older sequence). Each refusal shows in edge-b's
// log (relayed_release_refused, with its code) and edge-b's activation is unchanged.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { gunzipSync, gzipSync } from "node:zlib";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClient, createPeerTransport, packActiveRelease } from "../../src/edge/index.js";
import type { PackedRelease } from "../../src/edge/index.js";
import { freeLoopbackPort } from "../../src/lib/index.js";
import { readNodeState, setTrustRoot } from "../../src/node/index.js";
import { initCa, issueCert, readTlsIdentity } from "../../src/pki/index.js";
import { Publisher } from "../../src/quickstart/fleet-releases.js";
import { activateRelease } from "../../src/runtime/index.js";
import { REPO_ROOT } from "../helpers/cli.js";

const EDGED = join(REPO_ROOT, "bin", "edged.js");
const EXAMPLES = fileURLToPath(new URL("../../examples", import.meta.url));

interface Node {
  id: string;
  cfg: string;
  sock: string;
  root: string;
  port: number;
  child?: ChildProcess;
  log: string;
  exited?: Promise<number | null>;
}

async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms = 30_000): Promise<T> {
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

/** edge-a relays its active release; edge-b only receives (it lists edge-a, whose segments it accepts, and forwards nothing). */
function toml(n: Node, peer: Node, certs: string, forward: boolean): string {
  return [
    "config_version = 1",
    "[node]", `id = "${n.id}"`, `state_root = "${n.root}"`,
    "[transport]", `cert_file = "${join(certs, `${n.id}.crt`)}"`, `key_file = "${join(certs, `${n.id}.key`)}"`, `ca_file = "${join(certs, "ca.crt")}"`, `listen = "127.0.0.1:${n.port}"`,
    "[relay]", 'success_condition = "all_peers"', `relay_activated_release = ${forward}`,
    "[relay.retry]", "max_retry = 5", "backoff_initial_ms = 100", "backoff_max_ms = 500",
    "[scheduler]", "schedule_interval_seconds = 0.2",
    "[[peers]]", `id = "${peer.id}"`, `address = "127.0.0.1:${peer.port}"`,
    "",
  ].join("\n");
}

function events(n: Node, event: string): Record<string, unknown>[] {
  return n.log.split("\n").filter((l) => l.includes(`"${event}"`)).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The offset of the middle byte of the largest file in a tar (a blob of the release, not the archive's framing). */
function largestEntryMiddle(tar: Buffer): number {
  let best = { at: -1, size: 0 };
  for (let off = 0; off + 512 <= tar.length;) {
    const header = tar.subarray(off, off + 512);
    if (header.every((x) => x === 0)) break;
    const size = Number.parseInt(header.subarray(124, 136).toString("latin1").replace(/\0/g, "").trim() || "0", 8);
    if (size > best.size) best = { at: off + 512 + Math.floor(size / 2), size };
    off += 512 + Math.ceil(size / 512) * 512;
  }
  if (best.at < 0) throw new Error("the packed release holds no file");
  return best.at;
}

describe("a real release relayed between two edged", () => {
  let dir: string;
  let certs: string;
  const nodes: Node[] = [];
  let stale: PackedRelease | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edged-release-"));
    certs = join(dir, "certs");
    await initCa({ outDir: certs });
    for (const id of ["edge-a", "edge-b"]) {
      await issueCert({ caDir: certs, name: id, sans: ["127.0.0.1"] });
      const root = join(dir, id);
      await mkdir(root, { recursive: true });
      nodes.push({ id, cfg: join(dir, `${id}.toml`), sock: join(dir, `${id}.sock`), root, port: await freeLoopbackPort(), log: "" });
    }
    const [a, b] = nodes as [Node, Node];
    // One publisher; each node trusts its key in its own state root. edge-a activates release 1, then release 2.
    const pub = await Publisher.create(join(dir, "publisher"));
    for (const n of nodes) await setTrustRoot(n.root, { keys: [pub.publicPem], repository: pub.repository });
    const r1 = await pub.release("release 1", "v1", 1, join(EXAMPLES, "agent"), join(EXAMPLES, "policies"), "1.0.0");
    await activateRelease({ ref: r1.ref, stateRoot: a.root });
    stale = await packActiveRelease(a.root);
    const r2 = await pub.release("release 2", "v2", 2, join(EXAMPLES, "agent"), join(EXAMPLES, "policies"), "1.0.1");
    await activateRelease({ ref: r2.ref, stateRoot: a.root });
    await writeFile(a.cfg, toml(a, b, certs, true));
    await writeFile(b.cfg, toml(b, a, certs, false));
    for (const n of [b, a]) {
      const child = spawn(process.execPath, [EDGED, "run", "--config", n.cfg, "--control-socket", n.sock], { stdio: ["ignore", "ignore", "pipe"] });
      child.stderr.on("data", (d: Buffer) => (n.log += d.toString()));
      n.child = child;
      n.exited = new Promise((r) => child.once("exit", (code) => r(code)));
      await until(() => new ControlClient({ socketPath: n.sock }).status(), (s) => s.node_id === n.id);
    }
  }, 90_000);

  afterAll(async () => {
    for (const n of nodes) if (n.child && n.child.exitCode === null) n.child.kill("SIGKILL");
    await rm(dir, { recursive: true, force: true });
  });

  it("edge-a's newly active release is relayed and activated by edge-b under its own trust root (same statement and sequence)", async () => {
    const [a, b] = nodes as [Node, Node];
    const want = (await readNodeState(a.root)).activation;
    expect(want?.sequence).toBe(2);
    const got = await until(async () => (await readNodeState(b.root)).activation, (x) => x?.statement_digest === want?.statement_digest);
    expect(got?.sequence).toBe(2);
    expect(events(b, "relayed_release_activated")).toHaveLength(1);
    expect(events(b, "relayed_release_activated")[0]).toMatchObject({ from: "edge-a" });
  }, 60_000);

  async function pushAsEdgeA(bytes: Uint8Array): Promise<string> {
    const [, b] = nodes as [Node, Node];
    const tls = await readTlsIdentity({ certFile: join(certs, "edge-a.crt"), keyFile: join(certs, "edge-a.key"), caFile: join(certs, "ca.crt") });
    const t = createPeerTransport({ tls, dialTimeoutMs: 2_000, ackTimeoutMs: 5_000 });
    const id = createHash("sha256").update(bytes).digest("hex");
    try {
      await t.push({ id: "edge-b", address: `127.0.0.1:${b.port}` }, { id, size: bytes.byteLength, kind: "release" }, bytes);
    } finally {
      await t.close();
    }
    return id;
  }

  /** edge-a's active release with one byte flipped: in the gzip stream (`compressed`), or inside the archive's content, recompressed so it still reads. */
  async function tampered(where: "compressed" | "content"): Promise<Buffer> {
    const good = Buffer.from((await packActiveRelease(nodes[0]?.root ?? ""))?.bytes ?? new Uint8Array());
    const bytes = where === "compressed" ? good : gunzipSync(good);
    const at = where === "compressed" ? Math.floor(bytes.length / 2) : largestEntryMiddle(bytes);
    bytes[at] = (bytes[at] ?? 0) ^ 0x01;
    return where === "compressed" ? bytes : gzipSync(bytes);
  }

  for (const where of ["compressed", "content"] as const) {
    it(`attack (trust): a relayed release with a tampered byte (${where}) is refused by edge-b; its log says so and its activation is unchanged`, async () => {
      const [, b] = nodes as [Node, Node];
      const before = (await readNodeState(b.root)).activation;
      const id = await pushAsEdgeA(await tampered(where));
      const refused = await until(() => Promise.resolve(events(b, "relayed_release_refused")), (e) => e.some((x) => x.segment_id === id));
      const entry = refused.find((x) => x.segment_id === id);
      expect(entry).toMatchObject({ from: "edge-a", code: expect.stringMatching(/^[A-Z_]+$/) as unknown });
      // A broken archive is refused by the hostile-input reader; a readable one with a changed blob by the release rules (as a registry pull).
      if (where === "compressed") expect(entry?.code).toBe("RELAYED_RELEASE_INVALID");
      else expect(entry?.code).not.toBe("RELAYED_RELEASE_INVALID");
      expect(events(b, "relayed_release_activated")).toHaveLength(1);
      expect((await readNodeState(b.root)).activation).toEqual(before);
    }, 60_000);
  }

  it("attack (trust): a relayed release with a stale statement (sequence 1 after 2) is refused by edge-b; its activation is unchanged", async () => {
    const [, b] = nodes as [Node, Node];
    const before = (await readNodeState(b.root)).activation;
    expect(stale?.sequence).toBe(1);
    const id = await pushAsEdgeA(stale?.bytes ?? new Uint8Array());
    const refused = await until(() => Promise.resolve(events(b, "relayed_release_refused")), (e) => e.some((x) => x.segment_id === id));
    expect(String(refused.find((x) => x.segment_id === id)?.error)).toMatch(/sequence|stale|rollback|older/i);
    expect(events(b, "relayed_release_activated")).toHaveLength(1);
    expect((await readNodeState(b.root)).activation).toEqual(before);
  }, 60_000);

  it("SIGTERM stops both with exit 0", async () => {
    for (const n of nodes) n.child?.kill("SIGTERM");
    for (const n of nodes) expect(await n.exited, n.log.slice(-2000)).toBe(0);
  }, 30_000);
});
