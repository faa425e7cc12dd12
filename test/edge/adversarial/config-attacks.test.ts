/**
 * Adversarial review, session 3 (helper adv): edge.toml and `autonomy config
 * migrate` fed hostile files. `attack: …` tests that fail are findings; the
 * others are regression tests for attacks that held.
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadEdgeConfig, migrateEdgeConfigFile, parseEdgeConfig, runPrecheck } from "../../../src/edge/index.js";
import { cloneNode, makeEdgeBootFixture, snapshotDir } from "../../helpers/edge-boot.js";
import { nodeWalLocation } from "../../../src/node/index.js";
import type { EdgeBootFixture } from "../../helpers/edge-boot.js";
import { needs } from "../../helpers/needs.js";

const FIXED = Math.floor(Date.now() / 1000) * 1000 + 3_600_000;
const clock = { now: () => FIXED };

/** A FIFO at `path` fed `bytes` by dd; `drained` says whether the reader took them all (a bounded reader closes early: dd dies of SIGPIPE). */
async function fifoFeeder(path: string, bytes: number): Promise<{ drained: Promise<boolean> }> {
  await new Promise<void>((resolve, reject) => {
    const mk = spawn("mkfifo", [path], { stdio: "ignore" });
    mk.once("error", reject);
    mk.once("exit", (c) => (c === 0 ? resolve() : reject(new Error(`mkfifo exit ${c}`))));
  });
  const dd = spawn("dd", ["if=/dev/zero", `of=${path}`, "bs=65536", `count=${Math.ceil(bytes / 65536)}`, "status=none"], { stdio: "ignore" });
  return { drained: new Promise((resolve) => dd.once("exit", (code, signal) => resolve(code === 0 && signal === null))) };
}

const V1 = (stateRoot: string, extra = ""): string =>
  `config_version = 1\n[node]\nid = "edge-a"\nstate_root = ${JSON.stringify(stateRoot)}\n[transport]\ncert_file = "c.crt"\nkey_file = "c.key"\nca_file = "ca.crt"\n${extra}`;

describe("adversarial review 3: edge.toml and autonomy config migrate", () => {
  // ---- findings ----

  it("attack: `autonomy config migrate` on an endless file (a FIFO; /dev/zero behind a symlink) refuses it after 1 MiB instead of draining it into memory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "adv3-cfg-"));
    const { drained } = await fifoFeeder(join(dir, "edge.toml"), 16 * 1024 * 1024);
    await expect(migrateEdgeConfigFile(join(dir, "edge.toml"))).rejects.toMatchObject({ code: "EDGE_CONFIG_INVALID" });
    expect(await drained, "migrate read all 16 MiB before refusing the file (edged's loader stops after 1 MiB)").toBe(false);
  }, 30_000);

  // ---- held (regression tests) ----

  it("attack: edged's config loader on an endless file (a FIFO) stops reading after 1 MiB + 1 byte", async () => {
    const dir = await mkdtemp(join(tmpdir(), "adv3-cfg-"));
    const { drained } = await fifoFeeder(join(dir, "edge.toml"), 16 * 1024 * 1024);
    await expect(loadEdgeConfig(join(dir, "edge.toml"))).rejects.toMatchObject({ code: "EDGE_CONFIG_INVALID" });
    expect(await drained).toBe(false);
  }, 30_000);

  it("attack: a peer address that is a unix socket path, a URL or carries a path is refused (EDGE_CONFIG_INVALID naming peers[0].address)", () => {
    for (const address of ["/run/autonomy/edged.sock", "unix:/run/x.sock", "unix:///run/x.sock:1", "https://edge-b:7444", "edge-b:7444/x", "edge-b", "edge-b:99999", "@abstract:1", "../sock:1", "edge b:1"]) {
      const text = V1("/var/lib/autonomy", `[[peers]]\nid = "edge-b"\naddress = ${JSON.stringify(address)}\n`);
      expect(() => parseEdgeConfig("/etc/autonomy/edge.toml", text), address).toThrow(/peers\[0\]\.address|\[\[peers\]\]|address/);
    }
  });

  it("attack: `config migrate --write` of a binary or non-TOML file writes nothing: no backup, the file unchanged", async () => {
    const dir = await mkdtemp(join(tmpdir(), "adv3-cfg-"));
    const file = join(dir, "edge.toml");
    for (const bytes of [Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0xff, 0x0a]), Buffer.from("[node\nid = \n"), Buffer.from("config_version = 7\n")]) {
      await writeFile(file, bytes);
      const err = await migrateEdgeConfigFile(file, { write: true }).then(() => undefined, (e: unknown) => e as { code?: string });
      expect(err?.code).toMatch(/^EDGE_CONFIG_(INVALID|VERSION)$/);
      expect((await readFile(file)).equals(bytes)).toBe(true);
      expect(await readdir(dir)).toEqual(["edge.toml"]);
    }
  });
});

describe("adversarial review 3: runtime_install_dir naming a directory that holds other software", () => {
  let f: EdgeBootFixture;
  beforeAll(async () => {
    needs("openssl").check();
    f = await makeEdgeBootFixture();
  }, 120_000);

  it("attack: runtime_install_dir reached through a symlink to a directory holding the state root is refused (the overlap check compares path strings only), not wiped by the reconstruction", async () => {
    const n = await cloneNode(f);
    // /opt/autonomy -> /data, with the state root at /data/state: the strings do not overlap, the directories do.
    const link = join(await mkdtemp(join(tmpdir(), "adv3-opt-")), "autonomy");
    await symlink(n.dir, link);
    await writeFile(n.config, (await readFile(n.config, "utf8")).replace(/runtime_install_dir = .*/, `runtime_install_dir = ${JSON.stringify(link)}`));
    const wal = await snapshotDir(nodeWalLocation(n.stateRoot).dir);
    await runPrecheck({ configPath: n.config, clock });
    await writeFile(n.kernel, "6.11.0-1-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    const left = await readdir(n.dir);
    expect(left, `precheck exit ${r.exitCode}: ${r.checks.at(-1)?.detail ?? ""}`).toContain("state");
    const after = await snapshotDir(nodeWalLocation(n.stateRoot).dir).catch(() => new Map<string, Buffer>());
    expect([...after.keys()].sort(), `precheck exit ${r.exitCode}; left in the node's directory: ${left.join(", ")}; in the state root: ${(await readdir(n.stateRoot)).join(", ")}`).toEqual([...wal.keys()].sort());
  });

  it("attack: runtime_install_dir = a shared directory (like /usr/local/bin) does not make the first reconstruction delete the other programs in it", async () => {
    const n = await cloneNode(f);
    // The operator's install dir already holds other software (or a v0 file's path, carried over by `config migrate`, names one).
    await mkdir(join(n.installDir, "share"), { recursive: true });
    await writeFile(join(n.installDir, "other-tool"), "#!/bin/sh\necho not ours\n", { mode: 0o755 });
    await writeFile(join(n.installDir, "share", "data.db"), "someone else's data");
    await runPrecheck({ configPath: n.config, clock });
    await writeFile(n.kernel, "6.11.0-1-amd64\n");
    const r = await runPrecheck({ configPath: n.config, clock });
    // Refusing (exit 5, naming the foreign files) or installing beside them are both safe; deleting them is not.
    const left = await readdir(n.installDir);
    expect(left, `precheck exit ${r.exitCode}: ${r.checks.at(-1)?.detail ?? ""}`).toContain("other-tool");
    expect(left).toContain("share");
    await rm(n.dir, { recursive: true, force: true });
  });
});
