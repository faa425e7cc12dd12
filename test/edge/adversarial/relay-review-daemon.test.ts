/**
 * Adversarial review (issue 11, relay half): a peer relays a release this
 * node must refuse (another channel, a lower sequence, an expired statement:
 * every one a verification refusal, exit 4). release-hooks refuses it for
 * good — and says so only in a log line: `edgectl relay status` (and the
 * metrics) show nothing, so the on-call operator never learns that a peer is
 * pushing downgrades or foreign releases.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it, vi } from "vitest";
import { ControlClient } from "../../../src/edge/index.js";
import { statusText } from "../../../src/cli/commands/edgectl-render.js";
import type { RelayParts } from "../../../src/edge/index.js";
import { startEdgeDaemon } from "../../../src/edge/daemon/daemon.js";
import type { EdgeDaemon } from "../../../src/edge/daemon/daemon.js";
import { AutonomyError, ExitCodes } from "../../../src/lib/index.js";
import { createLogger } from "../../../src/observability/index.js";
import { loadJsonEdgeConfig, recordingParts, testEdgeConfig } from "../../helpers/relay-parts-double.js";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

it("attack: a peer relays a release from a lower sequence — the refusal shows in `edgectl relay status`, not only in a log line", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rev2-daemon-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const cfgPath = join(dir, "edge.json");
  const config = testEdgeConfig(cfgPath, join(dir, "state"));
  config.relay = { ...config.relay, activateRelayedReleases: true, relayActivatedRelease: false };
  await writeFile(cfgPath, JSON.stringify(config));
  const segId = "ab".repeat(32);
  let cursor = 0;
  const recorded = recordingParts();
  const factory = async (c: typeof config): Promise<RelayParts> => {
    const p = await recorded.factory(c);
    return {
      ...p,
      // MemoryStore has no get: the bytes do not matter, the release double refuses them.
      store: Object.assign(p.store, { get: () => Promise.resolve(new Uint8Array([1])) }),
      inbox: {
        inbox: (after: number) => Promise.resolve(after < 1 ? [{ seq: 1, segment: { id: segId, size: 1, kind: "release" as const }, from: "edge-b" }] : []),
        applicationCursor: () => Promise.resolve(cursor),
        advanceApplicationCursor: (seq: number) => { cursor = seq; return Promise.resolve(); },
      },
    };
  };
  // What activateRelease throws for a statement below the node's sequence floor: a verification refusal (exit 4).
  class Rollback extends AutonomyError<"RELEASE_ROLLBACK"> {}
  const release = {
    watchActiveRelease: () => ({ stop: () => Promise.resolve() }),
    activateRelayedRelease: () => Promise.reject(new Rollback("RELEASE_ROLLBACK", "sequence 1 is below this node's floor 2", { hint: "re-seed a newer release", exitCode: ExitCodes.verification })),
  };
  const sock = join(dir, "run", "ctl.sock");
  const daemon: EdgeDaemon = await startEdgeDaemon(config, { controlSocket: sock, parts: factory, release, loadConfig: loadJsonEdgeConfig, log: createLogger({ name: "rev2", level: "silent" }), watchConfig: false });
  cleanups.push(() => daemon.stop());
  await vi.waitFor(() => expect(cursor).toBe(1), { timeout: 10_000 });
  const status = JSON.stringify(await new ControlClient({ socketPath: sock }).status());
  expect(status).toContain(segId);
});

it("attack: a peer keeps relaying refused releases — Prometheus counts them by code (edged_relay_releases_refused_total) and status names code, sender and time", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rev2-daemon-metrics-"));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const cfgPath = join(dir, "edge.json");
  const config = testEdgeConfig(cfgPath, join(dir, "state"));
  config.relay = { ...config.relay, activateRelayedReleases: true, relayActivatedRelease: false };
  await writeFile(cfgPath, JSON.stringify(config));
  const entries = [1, 2, 3].map((seq) => ({ seq, segment: { id: String(seq).repeat(64), size: 1, kind: "release" as const }, from: seq === 3 ? "edge-c" : "edge-b" }));
  let cursor = 0;
  const recorded = recordingParts();
  const factory = async (c: typeof config): Promise<RelayParts> => {
    const p = await recorded.factory(c);
    return {
      ...p,
      store: Object.assign(p.store, { get: () => Promise.resolve(new Uint8Array([1])) }),
      inbox: {
        inbox: (after: number, limit: number) => Promise.resolve(entries.filter((e) => e.seq > after).slice(0, limit)),
        applicationCursor: () => Promise.resolve(cursor),
        advanceApplicationCursor: (seq: number) => { cursor = seq; return Promise.resolve(); },
      },
    };
  };
  class Refused extends AutonomyError<"ACTIVATION_ROLLBACK_REFUSED" | "STATEMENT_EXPIRED"> {}
  const release = {
    watchActiveRelease: () => ({ stop: () => Promise.resolve() }),
    activateRelayedRelease: () => Promise.reject(cursor < 2
      ? new Refused("ACTIVATION_ROLLBACK_REFUSED", "below the floor", { hint: "h", exitCode: ExitCodes.verification })
      : new Refused("STATEMENT_EXPIRED", "expired", { hint: "h", exitCode: ExitCodes.verification })),
  };
  const sock = join(dir, "run", "ctl.sock");
  const daemon = await startEdgeDaemon(config, { controlSocket: sock, prometheusAddr: "127.0.0.1:0", parts: factory, release, loadConfig: loadJsonEdgeConfig, log: createLogger({ name: "rev2", level: "silent" }), watchConfig: false });
  cleanups.push(() => daemon.stop());
  await vi.waitFor(() => expect(cursor).toBe(3), { timeout: 10_000 });
  const status = await new ControlClient({ socketPath: sock }).status();
  expect(status.inbox.rejected.map((r) => [r.seq, r.outcome, r.code, r.from])).toEqual([
    [1, "refused", "ACTIVATION_ROLLBACK_REFUSED", "edge-b"], [2, "refused", "ACTIVATION_ROLLBACK_REFUSED", "edge-b"], [3, "refused", "STATEMENT_EXPIRED", "edge-c"],
  ]);
  expect(status.inbox.rejected.every((r) => !Number.isNaN(Date.parse(r.at)))).toBe(true);
  expect(statusText(status)).toContain("inbox: 3 received segment(s) not applied: release refused ACTIVATION_ROLLBACK_REFUSED ×2, release refused STATEMENT_EXPIRED ×1");
  expect(statusText(status)).toContain(`#3 release ${"3".repeat(64)} from edge-c: refused STATEMENT_EXPIRED`);
  const scrape = await (await fetch(`http://${daemon.metricsAddress ?? ""}/metrics`)).text();
  expect(scrape).toContain('edged_relay_releases_refused_total{code="ACTIVATION_ROLLBACK_REFUSED"} 2');
  expect(scrape).toContain('edged_relay_releases_refused_total{code="STATEMENT_EXPIRED"} 1');
});
