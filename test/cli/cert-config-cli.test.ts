// `autonomy cert …` and `autonomy config migrate` as a user runs them: the built CLI, real files, real exit codes.
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, runJson } from "../helpers/cli.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "cert-config-cli-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("autonomy cert", () => {
  it("ca init, then issue with SANs, then show; a second init is refused (CA_EXISTS, exit 1) unless --force", async () => {
    const ca = join(dir, "ca");
    const init = await runJson(["cert", "ca", "init", "--out", ca, "--json"]);
    expect(init.code).toBe(0);
    expect(init.json).toMatchObject({ ok: true, cert_file: join(ca, "ca.crt"), certificate: { is_ca: true } });
    expect((await stat(join(ca, "ca.key"))).mode & 0o777).toBe(0o600);
    const again = await runJson(["cert", "ca", "init", "--out", ca, "--json"]);
    expect(again.code).toBe(1);
    expect(again.json).toMatchObject({ ok: false, code: "CA_EXISTS" });
    expect((await runCli(["cert", "ca", "init", "--out", ca, "--force", "--days", "400"])).code).toBe(0);

    const issue = await runJson(["cert", "issue", "--ca", ca, "--name", "edge-a", "--days", "30", "--out", join(dir, "n"), "--san", "127.0.0.1", "--san", "localhost", "--json"]);
    expect(issue.code).toBe(0);
    expect(issue.json).toMatchObject({ cert_file: join(dir, "n", "edge-a.crt"), certificate: { subject_cn: "edge-a", sans: ["DNS:edge-a", "IP:127.0.0.1", "DNS:localhost"] } });
    const show = await runCli(["cert", "show", join(dir, "n", "edge-a.crt")]);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain("SANs:        DNS:edge-a, IP:127.0.0.1, DNS:localhost");
    expect(show.stdout).toContain("usage:       serverAuth, clientAuth");
    const tooLong = await runJson(["cert", "issue", "--ca", ca, "--name", "edge-b", "--days", "500", "--json"]);
    expect(tooLong.json).toMatchObject({ code: "CERT_VALIDITY_INVALID" });
  });

  it("show on garbage is CERT_UNREADABLE naming the file, exit 1", async () => {
    const f = join(dir, "garbage.crt");
    await writeFile(f, "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
    const r = await runCli(["cert", "show", f]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: ${f}: certificate 1 is not valid base64`);
    expect((await runCli(["cert", "issue", "--ca", dir, "--name", "x", "--days", "zero"])).code).toBe(2);
  });
});

const V0 = `# the original's layout
[node]
id = "edge-a"
state_root = "/var/lib/autonomy"
[transport]
cert_file = "a.crt"
key_file = "a.key"
ca_file = "ca.crt"
ca_key_file = "ca.key"
[relay]
success_condition = "ack"
bytes_per_second = 1000
`;

describe("autonomy config migrate", () => {
  it("without --write shows the changes and the diff, exits 0, and writes nothing", async () => {
    const d = join(dir, "dry");
    await mkdir(d);
    await writeFile(join(d, "edge.toml"), V0);
    const r = await runCli(["config", "migrate", "--config", join(d, "edge.toml")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("version 0 → 1 (dry run: nothing written; pass --write to apply)");
    expect(r.stdout).toContain("moved   [relay] bytes_per_second → [bandwidth] bytes_per_second");
    expect(r.stdout).toContain("note: comments and layout are not kept by the rewrite");
    expect(r.stdout).toContain('- success_condition = "ack"');
    expect(await readFile(join(d, "edge.toml"), "utf8")).toBe(V0);
    expect(await readdir(d)).toEqual(["edge.toml"]);
  });

  it("--write --json replaces the file after a backup; a v1 file is already current (exit 0, nothing written)", async () => {
    const d = join(dir, "write");
    await mkdir(d);
    const f = join(d, "edge.toml");
    await writeFile(f, V0);
    const r = await runJson<{ written: boolean; backup_file: string; changes: unknown[] }>(["config", "migrate", "--config", f, "--write", "--json"]);
    expect(r.code).toBe(0);
    expect(r.json.written).toBe(true);
    expect(await readFile(r.json.backup_file, "utf8")).toBe(V0);
    expect(await readFile(f, "utf8")).toMatch(/^config_version = 1\n/);
    const current = await runCli(["config", "migrate", "--config", f, "--write"]);
    expect(current.code).toBe(0);
    expect(current.stdout).toBe(`${f} is already config version 1: nothing to do\n`);
    expect(await readdir(d)).toHaveLength(2);
  });

  it("a file it cannot migrate exits 1 with the key path; a missing file names it", async () => {
    const f = join(dir, "bad.toml");
    await writeFile(f, V0.replace('success_condition = "ack"', 'success_condition = "most"'));
    const r = await runJson(["config", "migrate", "--config", f, "--write", "--json"]);
    expect(r.code).toBe(1);
    expect(r.json).toMatchObject({ code: "EDGE_CONFIG_INVALID" });
    expect(String(r.json.message)).toContain("[relay] success_condition");
    expect(await readFile(f, "utf8")).toContain("most");
    const missing = await runCli(["config", "migrate", "--config", join(dir, "nope.toml")]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("nope.toml: ENOENT");
  });
});
