/**
 * `autonomy node list` (the built CLI, a child process) against a real
 * control plane listening on loopback, on SQLite and PostgreSQL: --json is a
 * JSON array of every node (all pages), --label filters (AND), and a missing
 * or wrong token fails with the right exit code.
 */
import { afterEach, expect, it } from "vitest";
import { bearer, openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { enrollNode } from "../helpers/cp-fleet.js";
import { runCli } from "../helpers/cli.js";
import { describeDialects } from "../helpers/databases.js";

describeDialects("autonomy node list", (db) => {
  let cp: TestCp | undefined;
  afterEach(async () => {
    await cp?.close();
    cp = undefined;
  });

  it("--json prints a JSON array of every node with node_id, release_id, boot_epoch and last_seen; --label filters with AND", async () => {
    cp = await openTestCp({ location: await db.fresh() });
    const url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
    for (let i = 0; i < 5; i++) await enrollNode(cp, `edge-${i}`, { site: i < 3 ? "berlin" : "paris", ring: i % 2 === 0 ? "canary" : "main" });
    const cred = await enrollNode(cp, "edge-9", { site: "berlin", ring: "canary" });
    const hb = await cp.app.inject({ method: "POST", url: "/v1/nodes/edge-9/heartbeat", headers: bearer(cred), payload: { release_id: null, activation_sequence: null, lock_fingerprint: null, boot_epoch: 4, wal_generation: null, runtime_version: "0.1.0" } });
    expect(hb.statusCode, hb.body).toBe(200);

    const all = await runCli(["node", "list", "--server", url, "--json"], { env: { AUTONOMY_TOKEN: cp.owner } });
    expect(all.code, all.stderr).toBe(0);
    const nodes = JSON.parse(all.stdout) as { node_id: string; release_id: string | null; boot_epoch: number | null; last_seen: string | null }[];
    expect(Array.isArray(nodes)).toBe(true);
    expect(nodes.map((n) => n.node_id)).toEqual(["edge-0", "edge-1", "edge-2", "edge-3", "edge-4", "edge-9"]);
    for (const n of nodes) expect(Object.keys(n)).toEqual(expect.arrayContaining(["node_id", "release_id", "boot_epoch", "last_seen"]));
    expect(nodes.find((n) => n.node_id === "edge-9")).toMatchObject({ release_id: null, boot_epoch: 4, last_seen: "2026-12-05T10:00:00.000Z" });
    expect(nodes.find((n) => n.node_id === "edge-0")).toMatchObject({ release_id: null, boot_epoch: null, last_seen: null });

    const some = await runCli(["node", "list", "--server", url, "--token", cp.owner, "--label", "site=berlin", "--label", "ring=canary", "--json"]);
    expect(some.code, some.stderr).toBe(0);
    expect((JSON.parse(some.stdout) as { node_id: string }[]).map((n) => n.node_id)).toEqual(["edge-0", "edge-2", "edge-9"]);

    const text = await runCli(["node", "list", "--server", url, "--token", cp.owner]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^edge-9 {2}- {2}4 {2}2026-12-05T10:00:00\.000Z {2}-$/m);
  });

  it("no token → usage (exit 2); a wrong token → exit 1 naming the server's refusal; a malformed --label → exit 2", async () => {
    cp = await openTestCp({ location: await db.fresh() });
    const url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
    const none = await runCli(["node", "list", "--server", url, "--json"], { env: { AUTONOMY_TOKEN: undefined } });
    expect(none.code).toBe(2);
    const wrong = await runCli(["node", "list", "--server", url, "--token", "aop_x_y", "--json"]);
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ ok: false, code: "CP_REQUEST_REJECTED", problem_code: "TOKEN_INVALID" });
    const bad = await runCli(["node", "list", "--server", url, "--token", cp.owner, "--label", "site"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/key=value/);
  });
});

describeDialects("autonomy node enroll-token and node revoke", (db) => {
  let cp: TestCp | undefined;
  afterEach(async () => {
    await cp?.close();
    cp = undefined;
  });

  it("enroll-token prints a single-use token pinned to the node id and labels; the node enrolls with it once; revoke makes its credential 401", async () => {
    cp = await openTestCp({ location: await db.fresh() });
    const url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
    const made = await runCli(["node", "enroll-token", "--server", url, "--node-id", "edge-7", "--label", "site=berlin", "--label", "ring=canary", "--ttl", "1h", "--json"], { env: { AUTONOMY_TOKEN: cp.owner } });
    expect(made.code, made.stderr).toBe(0);
    const t = JSON.parse(made.stdout) as { ok: boolean; token: string; node_id: string | null; expires_at: string };
    expect(t).toMatchObject({ ok: true, node_id: "edge-7" });
    const enroll = (nodeId: string) => cp!.app.inject({ method: "POST", url: "/v1/nodes/enroll", headers: bearer(t.token), payload: { node_id: nodeId } });
    expect((await enroll("edge-8")).statusCode).toBe(403);
    const ok = await enroll("edge-7");
    expect(ok.statusCode, ok.body).toBe(201);
    const cred = (JSON.parse(ok.body) as { credential: string }).credential;
    expect((await enroll("edge-7")).statusCode).toBe(401);
    const listed = await runCli(["node", "list", "--server", url, "--token", cp.owner, "--label", "ring=canary", "--json"]);
    expect((JSON.parse(listed.stdout) as { node_id: string; labels: Record<string, string> }[]).map((n) => [n.node_id, n.labels])).toEqual([["edge-7", { site: "berlin", ring: "canary" }]]);

    const hb = { release_id: null, activation_sequence: null, lock_fingerprint: null, boot_epoch: 1, wal_generation: null, runtime_version: "0.1.0" };
    expect((await cp.app.inject({ method: "POST", url: "/v1/nodes/edge-7/heartbeat", headers: bearer(cred), payload: hb })).statusCode).toBe(200);
    const revoked = await runCli(["node", "revoke", "edge-7", "--server", url, "--token", cp.owner, "--json"]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(JSON.parse(revoked.stdout)).toMatchObject({ ok: true, node_id: "edge-7", revoked: 1 });
    expect((await cp.app.inject({ method: "POST", url: "/v1/nodes/edge-7/heartbeat", headers: bearer(cred), payload: hb })).statusCode).toBe(401);
  });

  it("a --ttl outside 1m..30d and a label key given twice are usage errors (exit 2) before anything is made", async () => {
    cp = await openTestCp({ location: await db.fresh() });
    const url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
    const short = await runCli(["node", "enroll-token", "--server", url, "--token", cp.owner, "--ttl", "10s"]);
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/1m\.\.30d/);
    const twice = await runCli(["node", "enroll-token", "--server", url, "--token", cp.owner, "--label", "a=1", "--label", "a=2"]);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/given twice/);
  });
});
