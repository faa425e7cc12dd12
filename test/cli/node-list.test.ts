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
