// edged's Prometheus endpoint has no authentication (issue 11, session 3, "sec"): what it binds by default,
// what it refuses, what it warns about, and that a scrape carries no secret. Also the boot epoch after a real
// OS replacement (edged precheck), as `edgectl relay status` and the metrics show it.
import { connect } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { spawnSync } from "node:child_process";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ControlClient, loadEdgeConfig, parseMetricsAddress, runPrecheck } from "../../src/edge/index.js";
import type { EdgeConfig } from "../../src/edge/index.js";
import { startEdgeDaemon } from "../../src/edge/daemon/daemon.js";
import type { EdgeDaemon } from "../../src/edge/daemon/daemon.js";
import { createLogger } from "../../src/observability/index.js";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import { OS_RELEASE_B, cloneNode, makeEdgeBootFixture } from "../helpers/edge-boot.js";
import { needs } from "../helpers/needs.js";
import { loadJsonEdgeConfig, recordingParts, testEdgeConfig } from "../helpers/relay-parts-double.js";

const silent = createLogger({ name: "test.edged", level: "silent" });

/** A logger whose JSON lines the test reads. */
function capturingLogger(): { log: ReturnType<typeof createLogger>; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  return { log: createLogger({ name: "test.edged", level: "info", destination }), lines: () => chunks.join("").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** Whether a TCP connection to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

const portOf = (address: string): number => Number(address.slice(address.lastIndexOf(":") + 1));

describe("--prometheus-addr: parsing and the loopback default", () => {
  it("a bare PORT or :PORT is loopback (127.0.0.1); other interfaces only as explicit IP literals, flagged as not loopback", () => {
    expect(parseMetricsAddress("9464")).toEqual({ host: "127.0.0.1", port: 9464, loopback: true });
    expect(parseMetricsAddress(":9464")).toEqual({ host: "127.0.0.1", port: 9464, loopback: true });
    expect(parseMetricsAddress("localhost:9464")).toEqual({ host: "127.0.0.1", port: 9464, loopback: true });
    expect(parseMetricsAddress("127.0.0.2:1")).toMatchObject({ loopback: true });
    expect(parseMetricsAddress("[::1]:1")).toEqual({ host: "::1", port: 1, loopback: true });
    expect(parseMetricsAddress("[::ffff:127.0.0.1]:1")).toMatchObject({ loopback: true });
    expect(parseMetricsAddress("0.0.0.0:9464")).toEqual({ host: "0.0.0.0", port: 9464, loopback: false });
    expect(parseMetricsAddress("10.0.0.5:9464")).toMatchObject({ loopback: false });
    expect(parseMetricsAddress("[::]:9464")).toEqual({ host: "::", port: 9464, loopback: false });
    expect(parseMetricsAddress("[::ffff:10.0.0.1]:1")).toMatchObject({ loopback: false });
    expect(parseMetricsAddress("")).toBeUndefined(); // off, as in the original
  });

  it("refuses what does not parse, and host names (the interface would depend on name resolution): EDGE_CONFIG_INVALID", () => {
    for (const bad of ["example.com:9464", "metrics:9464", "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536", "1.2.3.4:0009464", "::1:9464", "[::1]", "[127.0.0.1]:1", "1.2.3:80", "300.1.1.1:80", "a b:1", " 9464", "-1"]) {
      expect(() => parseMetricsAddress(bad), bad).toThrow(expect.objectContaining({ code: "EDGE_CONFIG_INVALID" }));
    }
  });
});

describe("edged's metrics endpoint", () => {
  let dir: string;
  let config: EdgeConfig;
  let daemon: EdgeDaemon | undefined;
  let parts: ReturnType<typeof recordingParts>;
  const start = (prometheusAddr: string, log = silent): Promise<EdgeDaemon> =>
    startEdgeDaemon(config, { controlSocket: join(dir, "run", "ctl.sock"), prometheusAddr, parts: parts.factory, loadConfig: loadJsonEdgeConfig, log, watchConfig: false });

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "edged-metrics-"));
    config = testEdgeConfig(join(dir, "edge.json"), join(dir, "state"));
    await writeFile(join(dir, "edge.json"), JSON.stringify(config));
    parts = recordingParts();
  });
  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  it("attack: `--prometheus-addr :PORT` served the unauthenticated metrics on every interface — now it binds 127.0.0.1 only", async () => {
    daemon = await start(":0");
    expect(daemon.metricsAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    const port = portOf(daemon.metricsAddress ?? "");
    expect(await accepts("127.0.0.1", port)).toBe(true);
    // From another interface of this machine (when it has one), nothing answers.
    const external = Object.values(networkInterfaces()).flat().find((a) => a !== undefined && !a.internal && a.family === "IPv4");
    if (external) expect(await accepts(external.address, port)).toBe(false);
  });

  it("an explicit non-loopback address is served, with a warning logged at start (metrics_exposed)", async () => {
    const { log, lines } = capturingLogger();
    daemon = await start("0.0.0.0:0", log);
    expect(daemon.metricsAddress).toMatch(/^0\.0\.0\.0:\d+$/);
    const warn = lines().find((l) => l.event === "metrics_exposed");
    expect(warn).toMatchObject({ level: 40, address: daemon.metricsAddress, msg: expect.stringContaining("WITHOUT authentication") as unknown });
    await daemon.stop();
    // Loopback: no warning.
    const quiet = capturingLogger();
    daemon = await start("127.0.0.1:0", quiet.log);
    expect(quiet.lines().some((l) => l.event === "metrics_exposed")).toBe(false);
    expect(quiet.lines().find((l) => l.event === "metrics_listening")).toMatchObject({ loopback: true });
  });

  it("an address that does not parse fails the start before anything is opened (EDGE_CONFIG_INVALID); `edged run` refuses it as a usage error (exit 2)", async () => {
    await expect(start("metrics.example.com:9464")).rejects.toMatchObject({ code: "EDGE_CONFIG_INVALID" });
    expect(() => parts.last()).toThrow("no parts opened yet");
    const r = await runProcess(process.execPath, ["--import", "tsx", join(REPO_ROOT, "src/cli/edged-main.ts"), "--config", join(dir, "edge.json"), "run", "--prometheus-addr", "metrics.example.com:9464", "--json"]);
    expect(r.code, r.stderr).toBe(2);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: "USAGE", message: expect.stringContaining("host name") as unknown });
  });

  it("answers only GET /metrics (anything else 404, no detail)", async () => {
    daemon = await start("127.0.0.1:0");
    const base = `http://${daemon.metricsAddress ?? ""}`;
    expect((await fetch(`${base}/metrics`)).status).toBe(200);
    for (const [path, method] of [["/", "GET"], ["/metrics", "POST"], ["/../etc/passwd", "GET"]] as const) {
      const res = await fetch(`${base}${path}`, { method });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect(await res.text()).toBe("not found; scrape /metrics\n");
    }
  });
});

describe("the boot epoch after a real OS replacement, in status and metrics; no secret in a scrape", () => {
  needs("openssl", "promtool").it("edged precheck reconstructs (epoch 0 → 1); status and edged_boot_epoch show epoch 1, completed, with the runtime installed; the scrape holds no key, certificate or path", async () => {
    const fixture = await makeEdgeBootFixture();
    let daemon: EdgeDaemon | undefined;
    try {
      const n = await cloneNode(fixture);
      expect((await runPrecheck({ configPath: n.config })).outcome).toBe("first_run");
      await writeFile(n.osRelease, OS_RELEASE_B); // the OS was replaced
      const pre = await runPrecheck({ configPath: n.config });
      expect(pre).toMatchObject({ exitCode: 0, outcome: "reconstructed", boot_epoch: 1 });
      const config = await loadEdgeConfig(n.config);
      const sock = join(n.dir, "run", "ctl.sock");
      daemon = await startEdgeDaemon(config, { controlSocket: sock, prometheusAddr: "0", parts: recordingParts().factory, loadConfig: loadEdgeConfig, log: silent, watchConfig: false });
      const status = await new ControlClient({ socketPath: sock }).status();
      expect(status.boot).toMatchObject({
        boot_epoch: 1, os_fingerprint: pre.fingerprint, error: null,
        last_reconstruction: { outcome: "completed", epoch: 1, previous_fingerprint: pre.previous_fingerprint, new_fingerprint: pre.fingerprint, runtime_manifest_digest: pre.evidence?.installed?.manifest_digest },
      });
      const body = await (await fetch(`http://${daemon.metricsAddress ?? ""}/metrics`)).text();
      expect(body).toContain(`edged_boot_epoch{os_fingerprint="${pre.fingerprint ?? ""}"} 1`);
      expect(body).toMatch(/^edged_boot_last_reconstruction_timestamp_seconds\{outcome="completed"\} \d+/m);
      // No secret: neither the key material nor where it lives, nor the node's paths.
      const key = await readFile(config.transport.keyFile, "utf8");
      const keyBody = key.split("\n").filter((l) => l.length > 0 && !l.startsWith("-----")).join("");
      for (const secret of [keyBody, keyBody.slice(0, 24), "PRIVATE KEY", "BEGIN", config.transport.keyFile, config.transport.certFile, config.transport.caFile, "node.key", config.node.stateRoot, n.dir]) {
        expect(body.includes(secret), `the scrape contains ${secret}`).toBe(false);
      }
      const check = spawnSync("promtool", ["check", "metrics"], { input: body, encoding: "utf8" });
      expect(check.status, check.stdout + check.stderr).toBe(0);
    } finally {
      await daemon?.stop();
      await rm(fixture.dir, { recursive: true, force: true });
    }
  });
});
