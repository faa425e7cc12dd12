// Two real edged processes on loopback (built launchers; `npm test` builds first) relay a real signed release:
// edge-a's newly active release reaches edge-b, which verifies it under its OWN trust root and activates it
// (no control plane). Then a peer with a valid fleet certificate pushes release segments edge-b must refuse:
// one with a tampered byte and one with a stale statement (an older sequence). Each refusal shows in edge-b's
// log (relayed_release_refused, with its code) and edge-b's activation is unchanged.
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { gunzipSync, gzipSync } from "node:zlib";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ControlClient, createPeerTransport, packActiveRelease } from "../../src/edge/index.js";
import type { PackedRelease } from "../../src/edge/index.js";
import { readNodeState, setTrustRoot } from "../../src/node/index.js";
import { readTlsIdentity } from "../../src/pki/index.js";
import { Publisher } from "../../src/quickstart/fleet-releases.js";
import { activateRelease } from "../../src/runtime/index.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { edgedNodes, edgedToml, killEdged, spawnEdged, until } from "../helpers/edged-loopback.js";
import type { EdgedNode as Node } from "../helpers/edged-loopback.js";

const EDGED = join(REPO_ROOT, "bin", "edged.js");
const EXAMPLES = fileURLToPath(new URL("../../examples", import.meta.url));

/** edge-a relays its active release; edge-b only receives (it lists edge-a, whose segments it accepts, and forwards nothing). */
const tomlOf = (n: Node, peer: Node, certs: string, forward: boolean): string => edgedToml(n, peer, certs, { successCondition: "all_peers", relayActivatedRelease: forward, maxRetry: 5 });

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
  let nodes: Node[] = [];
  let stale: PackedRelease | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edged-release-"));
    ({ certs, nodes } = await edgedNodes(dir, ["edge-a", "edge-b"], { sans: ["127.0.0.1"] }));
    const [a, b] = nodes as [Node, Node];
    // One publisher; each node trusts its key in its own state root. edge-a activates release 1, then release 2.
    const pub = await Publisher.create(join(dir, "publisher"));
    for (const n of nodes) await setTrustRoot(n.root, { keys: [pub.publicPem], repository: pub.repository });
    const r1 = await pub.release("release 1", "v1", 1, join(EXAMPLES, "agent"), join(EXAMPLES, "policies"), "1.0.0");
    await activateRelease({ ref: r1.ref, stateRoot: a.root });
    stale = await packActiveRelease(a.root);
    const r2 = await pub.release("release 2", "v2", 2, join(EXAMPLES, "agent"), join(EXAMPLES, "policies"), "1.0.1");
    await activateRelease({ ref: r2.ref, stateRoot: a.root });
    await writeFile(a.cfg, tomlOf(a, b, certs, true));
    await writeFile(b.cfg, tomlOf(b, a, certs, false));
    for (const n of [b, a]) {
      spawnEdged(n, [EDGED]);
      await until(() => new ControlClient({ socketPath: n.sock }).status(), (s) => s.node_id === n.id);
    }
  }, 90_000);

  afterAll(async () => {
    killEdged(nodes);
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
