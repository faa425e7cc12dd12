import { chmod, lstat, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EdgeError } from "../errors.js";
import { loadEdgeConfig } from "./load.js";
import { lineDiff, migrateEdgeConfigFile, planMigration } from "./migrate.js";

/** A version-0 file in the original product's spelling (docs/edge-config.md, "Version 0"). */
const V0 = `# edge node a (original layout)
[node]
id = "edge-a"
state_root = "/var/lib/autonomy"

[transport]
cert_file = "certs/edge-a.crt"
key_file = "certs/edge-a.key"
ca_file = "certs/ca.crt"
ca_key_file = "certs/ca.key"   # used by the original's precheck --rotate-certs

[relay]
worker_count = 2
success_condition = "ack"
bytes_per_second = 125000
daily_quota_bytes = 1000000000
evict_on_relay = true

[scheduler]
schedule_interval_seconds = 2

[[peers]]
id = "edge-b"
address = "10.0.0.2:7443"
`;

const BASE = `[node]\nid = "edge-a"\nstate_root = "/s"\n[transport]\ncert_file = "c"\nkey_file = "k"\nca_file = "a"\n`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "edge-migrate-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function failure(fn: () => unknown): EdgeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof EdgeError) return e;
    throw e;
  }
  throw new Error("expected an EdgeError");
}

describe("planMigration: version 0 → 1", () => {
  it("plans every documented edit and yields a file edged loads", () => {
    const p = planMigration("/etc/autonomy/edge.toml", V0);
    expect(p).toMatchObject({ from_version: 0, to_version: 1, current: false, comments_lost: true });
    expect(p.changes.map((c) => [c.action, c.key, c.to])).toEqual([
      ["added", "config_version", undefined],
      ["changed", "[relay] success_condition", undefined],
      ["moved", "[relay] bytes_per_second", "[bandwidth] bytes_per_second"],
      ["moved", "[relay] daily_quota_bytes", "[bandwidth] daily_quota_bytes"],
      ["removed", "[transport] ca_key_file", undefined],
    ]);
    expect(p.text.startsWith("config_version = 1\n")).toBe(true);
    expect(p.text).not.toContain("ca_key_file");
    expect(p.config.relay).toMatchObject({ successCondition: "all_peers", workerCount: 2, evictOnRelay: true });
    expect(p.config.bandwidth).toEqual({ bytes_per_second: 125_000, daily_quota_bytes: 1_000_000_000, quota_reset_utc: "00:00" });
    expect(p.config.scheduler.intervalMs).toBe(2000);
    expect(p.config.transport.certFile).toBe("/etc/autonomy/certs/edge-a.crt");
    expect(p.diff).toContain("- success_condition = \"ack\"");
    expect(p.diff).toContain("+ success_condition = \"all_peers\"");
    expect(p.diff).toContain("+ config_version = 1");
  });

  it("rename: only config_version is added to a file that needs nothing else", () => {
    const p = planMigration("e.toml", BASE);
    expect(p.changes.map((c) => c.key)).toEqual(["config_version"]);
    expect(p.comments_lost).toBe(false);
  });

  it('rename: [relay] success_condition "ack" becomes "all_peers"; "one_peer" stays', () => {
    expect(planMigration("e.toml", `${BASE}[relay]\nsuccess_condition = "ack"\n`).config.relay.successCondition).toBe("all_peers");
    const one = planMigration("e.toml", `${BASE}[relay]\nsuccess_condition = "one_peer"\n`);
    expect(one.config.relay.successCondition).toBe("one_peer");
    expect(one.changes).toHaveLength(1);
  });

  it("rename: [relay] bytes_per_second and daily_quota_bytes move to [bandwidth], also beside an existing [bandwidth]", () => {
    const p = planMigration("e.toml", `${BASE}[relay]\nbytes_per_second = 10\n[bandwidth]\nquota_reset_utc = "02:00"\n`);
    expect(p.config.bandwidth).toEqual({ bytes_per_second: 10, daily_quota_bytes: 0, quota_reset_utc: "02:00" });
    const q = planMigration("e.toml", `${BASE}[relay]\ndaily_quota_bytes = 99\n`);
    expect(q.config.bandwidth.daily_quota_bytes).toBe(99);
    expect(q.text).toContain("[bandwidth]\ndaily_quota_bytes = 99");
    expect(planMigration("e.toml", `${BASE}[relay]\nbytes_per_second = 10\n[bandwidth]\nbytes_per_second = 10\n`).config.bandwidth.bytes_per_second).toBe(10);
    const clash = failure(() => planMigration("e.toml", `${BASE}[relay]\nbytes_per_second = 10\n[bandwidth]\nbytes_per_second = 20\n`));
    expect(clash.code).toBe("EDGE_CONFIG_INVALID");
    expect(clash.message).toContain("[relay] bytes_per_second and [bandwidth] bytes_per_second are both set, to different values");
  });

  it("rename: [transport] ca_key_file is removed (edged never reads the CA key)", () => {
    const p = planMigration("e.toml", BASE.replace('ca_file = "a"\n', 'ca_file = "a"\nca_key_file = "ca.key"\n'));
    expect(p.changes[1]).toMatchObject({ action: "removed", key: "[transport] ca_key_file", from_value: "ca.key" });
  });

  it("a version-0 file that is still not valid as version 1 is refused with the v1 key paths, and config_version = 0 counts as version 0", () => {
    const e = failure(() => planMigration("e.toml", `${BASE}[relay]\nworkers = 3\n`));
    expect(e.code).toBe("EDGE_CONFIG_INVALID");
    expect(e.message).toBe("after migrating to version 1, e.toml: [relay] workers: unknown key (nothing was written)");
    expect(planMigration("e.toml", `config_version = 0\n${BASE}`).changes[0]).toMatchObject({ key: "config_version" });
  });

  it("a version-1 file is current; a newer or odd version is EDGE_CONFIG_VERSION", () => {
    expect(planMigration("e.toml", `config_version = 1\n${BASE}`)).toMatchObject({ current: true, changes: [], text: "" });
    expect(failure(() => planMigration("e.toml", `config_version = 2\n${BASE}`)).code).toBe("EDGE_CONFIG_VERSION");
    expect(failure(() => planMigration("e.toml", `config_version = "zero"\n${BASE}`)).code).toBe("EDGE_CONFIG_VERSION");
    expect(failure(() => planMigration("e.toml", `config_version = 1\n${BASE}colour = 1\n`)).code).toBe("EDGE_CONFIG_INVALID");
  });

  it("lineDiff marks removed, added and kept lines", () => {
    expect(lineDiff("a\nb\nc\n", "a\nx\nc\n")).toEqual(["  a", "+ x", "- b", "  c"]);
  });
});

describe("migrateEdgeConfigFile", () => {
  it("without write touches nothing", async () => {
    const d = join(dir, "dry");
    const f = join(d, "edge.toml");
    await rm(d, { recursive: true, force: true });
    await mkdir(d);
    await writeFile(f, V0);
    const before = await stat(f);
    const r = await migrateEdgeConfigFile(f);
    expect(r.written).toBe(false);
    expect(r.backup_file).toBeUndefined();
    expect(await readFile(f, "utf8")).toBe(V0);
    expect(await readdir(d)).toEqual(["edge.toml"]);
    expect((await stat(f)).mtimeMs).toBe(before.mtimeMs);
  });

  it("with write keeps a byte-exact backup (comments included), replaces the file keeping its mode, and the result loads", async () => {
    const d = join(dir, "write");
    await mkdir(d);
    const f = join(d, "edge.toml");
    await writeFile(f, V0);
    await chmod(f, 0o640);
    const clock = { now: () => Date.parse("2026-12-06T05:55:00.123Z") };
    const r = await migrateEdgeConfigFile(f, { write: true, clock });
    expect(r.written).toBe(true);
    expect(r.backup_file).toBe(`${f}.bak-20261206T055500Z`);
    expect(await readFile(r.backup_file ?? "", "utf8")).toBe(V0);
    expect((await stat(f)).mode & 0o777).toBe(0o640);
    expect((await stat(r.backup_file ?? "")).mode & 0o777).toBe(0o640);
    expect(await readFile(f, "utf8")).toBe(r.text);
    expect((await loadEdgeConfig(f)).relay.successCondition).toBe("all_peers");
    expect((await readdir(d)).sort()).toEqual(["edge.toml", "edge.toml.bak-20261206T055500Z"]);
    // Now current: a second run writes nothing, not even a backup.
    const again = await migrateEdgeConfigFile(f, { write: true, clock });
    expect(again).toMatchObject({ current: true, written: false });
    expect(await readdir(d)).toHaveLength(2);
    // A second migration in the same second never overwrites the first backup.
    await writeFile(f, V0);
    const third = await migrateEdgeConfigFile(f, { write: true, clock });
    expect(third.backup_file).toBe(`${f}.bak-20261206T055500Z-2`);
  });

  it("an invalid result writes nothing, not even the backup", async () => {
    const d = join(dir, "invalid");
    await mkdir(d);
    const f = join(d, "edge.toml");
    await writeFile(f, `${BASE}[relay]\nsuccess_condition = "majority"\n`);
    const e = await migrateEdgeConfigFile(f, { write: true }).then(() => undefined, (err: unknown) => err);
    expect((e as EdgeError).code).toBe("EDGE_CONFIG_INVALID");
    expect(await readdir(d)).toEqual(["edge.toml"]);
  });

  it("a symlinked config is replaced at its target; the link stays", async () => {
    const d = join(dir, "link");
    await mkdir(d);
    await writeFile(join(d, "real.toml"), BASE);
    await symlink("real.toml", join(d, "edge.toml"));
    const r = await migrateEdgeConfigFile(join(d, "edge.toml"), { write: true });
    expect((await lstat(join(d, "edge.toml"))).isSymbolicLink()).toBe(true);
    expect(await readlink(join(d, "edge.toml"))).toBe("real.toml");
    expect(await readFile(join(d, "real.toml"), "utf8")).toBe(r.text);
    expect(r.backup_file).toMatch(/real\.toml\.bak-/);
  });
});
