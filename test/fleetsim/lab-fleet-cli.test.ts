/**
 * `autonomy lab fleet` through the built binary (`npm run build` first)
 * against a real control plane in this process (buildApp over SQLite on
 * loopback): the printed seed, the JSON summary, the exit codes.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpClient } from "../../src/cpapi/index.js";
import type { Envelope } from "../../src/cpapi/index.js";
import { formatReference } from "../../src/oci/index.js";
import { describeRun, runCli, runJson } from "../helpers/cli.js";
import { makeRelease, testKeys } from "../helpers/release.js";
import type { TestKeys } from "../helpers/release.js";
import { openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";

interface Summary {
  seed: number;
  converged: boolean | null;
  latest_release_id: string | null;
  releases: Record<string, number>;
  phases: Record<string, number>;
  faults: Record<string, string[]>;
  requests: { total: number; p50_ms: number | null; p99_ms: number | null; transport_errors: number; by_route: Record<string, { count: number }> };
  exit_code: number;
  failure?: { code: string };
}

describe("autonomy lab fleet (CLI)", () => {
  let cp: TestCp;
  let url: string;
  let dir: string;
  let keys: TestKeys;
  let keyFile: string;

  beforeEach(async () => {
    cp = await openTestCp();
    url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
    dir = await mkdtemp(join(tmpdir(), "fleet-cli-"));
    keys = testKeys();
    keyFile = join(dir, "release.pub");
    await writeFile(keyFile, keys.publicPem);
  });
  afterEach(async () => {
    await cp.close();
  });

  const base = (): string[] => ["lab", "fleet", "--server", url, "--trust-key", keyFile, "--repository", `oci:${dir}/reg`, "--poll-interval", "200ms"];

  async function publish(): Promise<string> {
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1, repository: `oci:${dir}/reg` });
    const envelope = JSON.parse(Buffer.from(await rel.repo.getBlob(rel.signed.statement.envelope)).toString("utf8")) as Envelope;
    return (await new CpClient({ baseUrl: url, token: cp.owner }).publishRelease({ statement: envelope, image: formatReference(rel.ref), channel: "stable" })).release_id;
  }

  it("runs until converged, prints the seed on stderr and the summary as JSON (per-release and per-phase counts, faults, latencies)", async () => {
    const id = await publish();
    const r = await runJson<Summary>([...base(), "--devices", "10", "--faults", "corrupt=20%", "--seed", "5", "--until-converged", "--duration", "30s"], { env: { AUTONOMY_TOKEN: cp.owner } });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).toContain("fleet seed: 5");
    expect(r.json).toMatchObject({ seed: 5, converged: true, latest_release_id: id, releases: { [id]: 8, none: 2 }, phases: { activated: 8, verify_failed: 2 }, exit_code: 0 });
    expect(r.json.faults.corrupt).toHaveLength(2);
    expect(r.json.requests.transport_errors).toBe(0);
    expect(r.json.requests.by_route.enroll?.count).toBe(10);
    expect(r.json.requests.p99_ms).toBeGreaterThan(0);
  }, 60_000);

  it("exit 1 FLEET_NOT_CONVERGED when nothing is published before --duration, the summary printed first", async () => {
    const r = await runJson<Summary>([...base(), "--token", cp.owner, "--devices", "3", "--until-converged", "--duration", "2s"]);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.json).toMatchObject({ converged: false, latest_release_id: null, releases: { none: 3 }, exit_code: 1, failure: { code: "FLEET_NOT_CONVERGED" } });
  }, 60_000);

  it("refuses a server that is not on this machine (exit 2) and a bad --faults (exit 2)", async () => {
    const remote = await runCli(["lab", "fleet", "--server", "http://192.0.2.1:8888", "--token", "x", "--trust-key", keyFile, "--repository", "r", "--devices", "1", "--json"]);
    expect(remote.code, describeRun(remote)).toBe(2);
    expect(remote.stdout + remote.stderr).toContain("FLEET_SERVER_NOT_LOOPBACK");
    const faults = await runCli([...base(), "--token", cp.owner, "--devices", "1", "--faults", "explode=5%"]);
    expect(faults.code, describeRun(faults)).toBe(2);
    expect(faults.stderr).toMatch(/unknown fault "explode"/);
    const over = await runCli([...base(), "--token", cp.owner, "--devices", "1", "--faults", "fail=60%,hang=50%"]);
    expect(over.code, describeRun(over)).toBe(2);
  }, 60_000);

  it("an operator token without node:enroll cannot set up the fleet (exit 1 FLEET_SETUP_FAILED)", async () => {
    const viewer = await cp.tokenFor("viewer");
    const r = await runCli([...base(), "--token", viewer, "--devices", "2", "--json"]);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stdout + r.stderr).toContain("FLEET_SETUP_FAILED");
    expect(r.stdout + r.stderr).toContain("lacks node:enroll");
  }, 60_000);
});
