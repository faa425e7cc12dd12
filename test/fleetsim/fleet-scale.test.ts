/**
 * Scale smoke: 1,000 virtual devices (no faults) in one `autonomy lab fleet`
 * process against an `autonomy serve` process (SQLite), both the built
 * binary (`npm run build` first), until every device runs the published
 * release. Reports how long it took and the simulator's memory.
 */
import { afterEach, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpClient } from "../../src/cpapi/index.js";
import type { Envelope } from "../../src/cpapi/index.js";
import { formatReference } from "../../src/oci/index.js";
import { describeRun, runJson } from "../helpers/cli.js";
import { bootstrapToken, killServe, startServe } from "../helpers/cp-serve.js";
import { makeRelease, testKeys } from "../helpers/release.js";

describe("fleet simulator at scale", () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it("1,000 devices enroll, verify and converge on a release published to `autonomy serve`, with no transport error", async () => {
    const dir = await mkdtemp(join(tmpdir(), "fleet-scale-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const tokenFile = join(dir, "boot.token");
    // The store on tmpfs when there is one: this test proves the protocol at scale (every device converges,
    // no transport error), not durability (events-store-errors, rollouts-sigkill do); each fsync on a shared
    // disk only made it wait (~60 s of npm test, a third of it spent in SQLite's full-sync commits).
    const storeDir = existsSync("/dev/shm") ? await mkdtemp(join("/dev/shm", "fleet-scale-")) : dir;
    cleanup.push(() => rm(storeDir, { recursive: true, force: true }));
    const s = await startServe(["--db", join(storeDir, "cp.db"), "--bootstrap-token-file", tokenFile]);
    cleanup.push(() => killServe(s));
    const owner = await bootstrapToken(tokenFile);
    const keys = testKeys();
    await writeFile(join(dir, "release.pub"), keys.publicPem);
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1, repository: `oci:${dir}/reg` });
    const envelope = JSON.parse(Buffer.from(await rel.repo.getBlob(rel.signed.statement.envelope)).toString("utf8")) as Envelope;
    const operator = new CpClient({ baseUrl: s.url, token: owner });
    const id = (await operator.publishRelease({ statement: envelope, image: formatReference(rel.ref), channel: "stable" })).release_id;

    const r = await runJson<{ elapsed_ms: number; converged: boolean; releases: Record<string, number>; requests: { total: number; transport_errors: number; p50_ms: number; p99_ms: number; peak_inflight: number }; events: { sent: number; inserted: number }; memory: { rss_bytes: number; heap_used_bytes: number } }>(
      ["lab", "fleet", "--server", s.url, "--devices", "1000", "--trust-key", join(dir, "release.pub"), "--repository", `oci:${dir}/reg`, "--poll-interval", "2s", "--until-converged", "--duration", "120s", "--seed", "1"],
      { env: { AUTONOMY_TOKEN: owner }, timeoutMs: 150_000 },
    );
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.json).toMatchObject({ converged: true, releases: { [id]: 1000 } });
    expect(r.json.requests.transport_errors).toBe(0);
    expect(r.json.events.inserted).toBe(r.json.events.sent);
    const mib = (b: number): string => `${(b / 2 ** 20).toFixed(0)} MiB`;
    process.stderr.write(`${JSON.stringify((r.json.requests as unknown as { by_route: unknown }).by_route)}\n`);
    process.stderr.write(`fleet scale smoke (store ${storeDir === dir ? "on disk" : "on tmpfs"}): 1000 devices converged in ${(r.json.elapsed_ms / 1000).toFixed(1)} s, ${r.json.requests.total} requests (p50 ${r.json.requests.p50_ms} ms, p99 ${r.json.requests.p99_ms} ms, peak in flight ${r.json.requests.peak_inflight}), simulator rss ${mib(r.json.memory.rss_bytes)}, heap ${mib(r.json.memory.heap_used_bytes)}\n`);
    const page = await operator.listNodes({ limit: 1000 });
    expect(page.nodes.filter((n) => n.release_id === id)).toHaveLength(1000);
  }, 180_000);
});
