/**
 * `autonomy serve`, `token create` and `release publish|list|show` end to end,
 * through the built binary (`npm run build` first), on SQLite and PostgreSQL.
 */
import { afterEach, expect, it } from "vitest";
import { generateKeyPairSync } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { signStatement } from "../../src/supplychain/index.js";
import { describeRun, runCli, runJson } from "../helpers/cli.js";
import { startServe } from "../helpers/cp-serve.js";
import { describeDialects } from "../helpers/databases.js";
import { samplePredicate } from "../helpers/statements.js";
import { makeRelease, testKeys } from "../helpers/release.js";

describeDialects("autonomy serve and its clients", (db) => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it("serves, prints the bootstrap token once, and token create / release publish|list|show work against it; SIGTERM exits 0", async () => {
    const dir = await mkdtemp(join(tmpdir(), "autonomy-serve-"));
    cleanup.push(() => rm(dir, { recursive: true, force: true }));
    const location = db.dialect === "sqlite" ? join(dir, "cp.db") : await db.fresh();
    const tokenFile = join(dir, "boot.token");
    const s = await startServe(["--db", location, "--bootstrap-token-file", tokenFile]);
    cleanup.push(() => Promise.resolve(void (s.child.exitCode === null && s.child.kill("SIGKILL"))));
    const owner = (await readFile(tokenFile, "utf8")).trim();
    expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
    const shown = s.stderr().split("\n").filter((l) => l.includes(owner));
    expect(shown).toHaveLength(1);
    expect(shown[0]).toMatch(/shown once, it will not be shown again/);
    const env = { AUTONOMY_SERVER: s.url, AUTONOMY_TOKEN: owner };

    const created = await runJson<{ ok: boolean; token: string; role: string }>(["token", "create", "--role", "publisher", "--name", "ci", "--ttl", "30d"], { env });
    expect(created.code, describeRun(created)).toBe(0);
    expect(created.json).toMatchObject({ ok: true, role: "publisher" });

    const key = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    const statementFile = join(dir, "statement.json");
    await writeFile(statementFile, JSON.stringify(signStatement(samplePredicate(7), [key]).envelope));
    const publish = ["release", "publish", "--statement", statementFile, "--image", "registry.example/team/agent:7", "--notes", "seven"];
    const published = await runJson<{ release: { release_id: string; sequence: number } }>(publish, { env: { ...env, AUTONOMY_TOKEN: created.json.token } });
    expect(published.code, describeRun(published)).toBe(0);
    expect(published.json.release.sequence).toBe(7);
    const id = published.json.release.release_id;

    const again = await runJson<{ release: { release_id: string } }>(publish, { env });
    expect(again.json.release.release_id).toBe(id);

    const listed = await runJson<{ releases: Array<{ release_id: string }> }>(["release", "list", "--channel", "stable"], { env });
    expect(listed.json.releases.map((r) => r.release_id)).toEqual([id]);
    const shownRel = await runCli(["release", "show", id], { env });
    expect(shownRel.code, describeRun(shownRel)).toBe(0);
    expect(shownRel.stdout).toContain("seq 7");
    expect(shownRel.stdout).toContain("notes: seven");

    // --standby: stored and listed as standby (a rollback target), never the channel's latest; the same
    // statement published again without it is refused naming `standby`.
    const standbyFile = join(dir, "statement-8.json");
    await writeFile(standbyFile, JSON.stringify(signStatement(samplePredicate(8), [key]).envelope));
    const publishStandby = ["release", "publish", "--statement", standbyFile, "--image", "registry.example/team/agent:8", "--standby"];
    const standby = await runJson<{ release: { release_id: string; standby: boolean } }>([...publishStandby, "--json"], { env });
    expect(standby.code, describeRun(standby)).toBe(0);
    expect(standby.json.release.standby).toBe(true);
    const plain = await runCli(["release", "list"], { env });
    expect(plain.stdout).toMatch(new RegExp(`${standby.json.release.release_id} .*STANDBY`));
    expect(plain.stdout).not.toMatch(new RegExp(`${id} .*STANDBY`));
    const flipped = await runCli(publishStandby.filter((a) => a !== "--standby"), { env });
    expect(flipped.code).not.toBe(0);
    expect(flipped.stderr).toMatch(/RELEASE_CONFLICT|standby/);
    expect(flipped.stderr).toContain("standby");

    const missing = await runCli(["release", "show", "rel-0000000000000000"], { env });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/RELEASE_NOT_FOUND|no release/);

    // Incident response from the CLI: list tokens (no secrets), revoke the publisher's, withdraw its release.
    const tokens = await runJson<{ tokens: Array<{ token_id: string; role: string; revoked_at: string | null }> }>(["token", "list"], { env });
    expect(tokens.code, describeRun(tokens)).toBe(0);
    expect(tokens.stdout).not.toContain(created.json.token);
    const pubId = tokens.json.tokens.find((t) => t.role === "publisher")?.token_id ?? "";
    const revoked = await runJson<{ token: { revoked_at: string | null } }>(["token", "revoke", pubId], { env });
    expect(revoked.code, describeRun(revoked)).toBe(0);
    expect(revoked.json.token.revoked_at).not.toBeNull();
    const refused = await runCli(["release", "list"], { env: { ...env, AUTONOMY_TOKEN: created.json.token } });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/TOKEN_REVOKED|revoked/);
    const withdrawn = await runJson<{ release: { withdrawn_at: string | null } }>(["release", "withdraw", id], { env });
    expect(withdrawn.code, describeRun(withdrawn)).toBe(0);
    expect(withdrawn.json.release.withdrawn_at).not.toBeNull();
    expect((await runCli(["release", "show", id], { env })).code).toBe(0);

    // The token never reaches the log lines (only its id does).
    const logLines = s.stderr().split("\n").filter((l) => l.startsWith('{"level"'));
    expect(logLines.length).toBeGreaterThan(0);
    for (const l of logLines) expect(l).not.toContain(owner.split("_")[2] ?? "unreachable");

    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);

    // A second start on the same store makes no new bootstrap token.
    const s2 = await startServe(["--db", location]);
    cleanup.push(() => Promise.resolve(void (s2.child.exitCode === null && s2.child.kill("SIGKILL"))));
    expect(s2.stderr()).toContain('"bootstrapped":false');
    expect(s2.stderr()).not.toContain("bootstrap owner token");
    s2.child.kill("SIGINT");
    expect(await s2.exited).toBe(0);
  }, 60_000);
});

it("autonomy serve: a --db it cannot open exits 1 with one error line and a hint", async () => {
  const r = await runCli(["serve", "--db", "/nonexistent-autonomy-dir/cp.db", "--listen", "127.0.0.1:0"]);
  expect(r.code).toBe(1);
  expect(r.stderr).toMatch(/^error: cannot open the SQLite store \/nonexistent-autonomy-dir\/cp\.db: .*\nhint: check --db/m);
});

it("autonomy token create without a server or token is a usage error (exit 2)", async () => {
  const r = await runCli(["token", "create", "--role", "viewer", "--name", "x"], { env: { AUTONOMY_SERVER: undefined, AUTONOMY_TOKEN: undefined } });
  expect(r.code).toBe(2);
  expect(r.stderr).toContain("--server");
});

it("autonomy release publish --from-image verifies the image's statement with --key, then publishes it; a wrong key publishes nothing", async () => {
  const dir = await mkdtemp(join(tmpdir(), "autonomy-fromimage-"));
  const s = await startServe(["--db", join(dir, "cp.db"), "--bootstrap-token-file", join(dir, "boot.token")]);
  try {
    const env = { AUTONOMY_SERVER: s.url, AUTONOMY_TOKEN: (await readFile(join(dir, "boot.token"), "utf8")).trim() };
    const keys = testKeys();
    const made = await makeRelease({ ref: `oci:${join(dir, "store")}:v1`, keys, sequence: 3, repository: "registry.example/team/agent" });
    await writeFile(join(dir, "release.pub"), keys.publicPem);
    await writeFile(join(dir, "other.pub"), testKeys().publicPem);
    const base = ["release", "publish", "--from-image", `oci:${join(dir, "store")}:v1`, "--repository", "registry.example/team/agent"];
    const wrong = await runCli([...base, "--key", join(dir, "other.pub")], { env });
    expect(wrong.code, describeRun(wrong)).toBe(4);
    const listedBefore = await runJson<{ releases: unknown[] }>(["release", "list"], { env });
    expect(listedBefore.json.releases).toEqual([]);
    const ok = await runJson<{ release: { sequence: number; image_digest: string; image: string } }>([...base, "--key", join(dir, "release.pub")], { env });
    expect(ok.code, describeRun(ok)).toBe(0);
    expect(ok.json.release).toMatchObject({ sequence: 3, image_digest: made.digest, image: `oci:${join(dir, "store")}:v1` });
  } finally {
    s.child.kill("SIGTERM");
    await s.exited;
    await rm(dir, { recursive: true, force: true });
  }
}, 60_000);
