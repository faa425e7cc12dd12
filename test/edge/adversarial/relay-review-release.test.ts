/**
 * Adversarial review (issue 11, relay half): a peer that pushes a `release`
 * segment built to make this node retry it forever. release-hooks treats only
 * exit code 4 (verification) as final; anything else leaves the application
 * cursor where it was, so ONE hostile segment blocks every later arrival
 * (data and releases) for good. A malformed relayed release must be refused
 * for good (exit 4), like any other release this node will never accept.
 */
import { describe, expect, it, beforeEach } from "vitest";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { activateRelayedRelease, packActiveRelease, relayedReleaseLimits } from "../../../src/edge/index.js";
import { activateRelease } from "../../../src/runtime/index.js";
import { setTrustRoot } from "../../../src/node/index.js";
import { parseManifest } from "../../../src/oci/index.js";
import { readTarGz, tarGz } from "../../../src/archive/index.js";
import type { ArchiveEntry } from "../../../src/archive/index.js";
import { makeRelease, testKeys } from "../../helpers/release.js";
import type { TestKeys } from "../../helpers/release.js";
import { codeOf } from "../../helpers/caught.js";
import { testEdgeConfig } from "../../helpers/relay-parts-double.js";
import { startReleaseHooks } from "../../../src/edge/daemon/release-hooks.js";
import { createLogger } from "../../../src/observability/index.js";
import { sha256Digest } from "../../../src/lib/index.js";

const REPOSITORY = "registry.example/prod/agent";
const LIMITS = relayedReleaseLimits(64 * 1024 * 1024);
const pack = (files: ArchiveEntry[]): Buffer => tarGz(files.map((f) => ({ name: f.name, content: f.data }))).gz;

describe("adversarial review: hostile release segments", () => {
  let dir: string;
  let keys: TestKeys;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "rev2-release-"));
    keys = testKeys();
  });

  async function packedFiles(): Promise<{ files: ArchiveEntry[]; peer: string }> {
    const rel = await makeRelease({ ref: `oci:${join(dir, "reg")}:v1`, keys, sequence: 1, repository: REPOSITORY, agentText: "agent v1", bundleVersion: "1.0.0" });
    const a = join(dir, "a");
    await setTrustRoot(a, { keys: [keys.publicPem], repository: REPOSITORY });
    await activateRelease({ ref: rel.ref, stateRoot: a });
    const packed = await packActiveRelease(a);
    if (packed === undefined) throw new Error("nothing active");
    const peer = join(dir, "b");
    await setTrustRoot(peer, { keys: [keys.publicPem], repository: REPOSITORY });
    return { files: await readTarGz(packed.bytes, { limits: LIMITS }), peer };
  }

  it("attack: a release segment whose index.json names a manifest blob the archive lacks is refused for good (exit 4), not retried forever blocking the inbox", async () => {
    const { files, peer } = await packedFiles();
    const index = parseManifest(files.find((f) => f.name === "index.json")?.data ?? Buffer.alloc(0));
    if (index.kind !== "index") throw new Error("no index");
    const tagged = index.value.manifests.find((d) => d.annotations?.["org.opencontainers.image.ref.name"] !== undefined);
    if (tagged === undefined) throw new Error("no tagged manifest");
    const without = files.filter((f) => f.name !== `blobs/sha256/${tagged.digest.slice(7)}`);
    const bytes = pack(without);
    const code = await codeOf(activateRelayedRelease({ stateRoot: peer, bytes }));
    expect(code).toMatch(/\/4$/);
  });

  it("attack: one hostile release segment from a peer does not block the inbox: a data segment after it is still applied", async () => {
    const { files, peer } = await packedFiles();
    const index = parseManifest(files.find((f) => f.name === "index.json")?.data ?? Buffer.alloc(0));
    if (index.kind !== "index") throw new Error("no index");
    const tagged = index.value.manifests.find((d) => d.annotations?.["org.opencontainers.image.ref.name"] !== undefined);
    const poison = pack(files.filter((f) => f.name !== `blobs/sha256/${tagged?.digest.slice(7) ?? ""}`));
    const config = testEdgeConfig(join(dir, "edge.toml"), peer);
    config.relay = { ...config.relay, activateRelayedReleases: true, relayActivatedRelease: false };
    let cursor = 0;
    const entries = [
      { seq: 1, segment: { id: sha256Digest(poison).slice(7), size: poison.length, kind: "release" as const }, from: "edge-a" },
      { seq: 2, segment: { id: "d".repeat(64), size: 1, kind: "data" as const }, from: "edge-a" },
    ];
    const hooks = startReleaseHooks({
      config, log: createLogger({ name: "rev2", level: "silent" }), intervalMs: 3_600_000,
      engine: { enqueue: () => Promise.reject(new Error("not used")) },
      store: { get: () => Promise.resolve(poison) },
      release: { watchActiveRelease: () => ({ stop: () => Promise.resolve() }), activateRelayedRelease: (o) => activateRelayedRelease(o) },
      inbox: {
        inbox: (after, limit) => Promise.resolve(entries.filter((e) => e.seq > after).slice(0, limit)),
        applicationCursor: () => Promise.resolve(cursor),
        advanceApplicationCursor: (seq) => { cursor = seq; return Promise.resolve(); },
      },
    });
    try {
      for (let i = 0; i < 3; i++) await hooks.drain();
      expect(cursor).toBe(2);
    } finally {
      await hooks.stop();
    }
  });
});
