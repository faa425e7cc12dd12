/**
 * Fleet fixtures for control-plane tests: enroll nodes through the real
 * routes (enrollment token → node credential), put a release row in the
 * store, and count rows (to prove a refused request wrote nothing).
 */
import { expect } from "vitest";
import type { Response as InjectResponse } from "light-my-request";
import type { Labels } from "../../src/cpapi/index.js";
import type { Store } from "../../src/orchestrator/index.js";
import { bearer } from "./cp-app.js";
import type { TestCp } from "./cp-app.js";

/** What `app.inject()` answers. */
export type Injected = InjectResponse;

/** Enrolls `nodeId` (with labels) and returns its node credential. */
export async function enrollNode(cp: TestCp, nodeId: string, labels: Labels = {}): Promise<string> {
  const t = await cp.app.inject({ method: "POST", url: "/v1/enrollment-tokens", headers: bearer(cp.owner), payload: { node_id: nodeId, labels } });
  expect(t.statusCode, t.body).toBe(201);
  const e = await cp.app.inject({ method: "POST", url: "/v1/nodes/enroll", headers: bearer(t.json<{ token: string }>().token), payload: { node_id: nodeId } });
  expect(e.statusCode, e.body).toBe(201);
  return e.json<{ credential: string }>().credential;
}

/**
 * A release row as the releases area stores it (the ack tests need one to exist; they do not test publishing).
 * `standby`: a rollback target (never the channel's latest), as `POST /v1/releases {"standby": true}` stores it.
 */
export async function putRelease(store: Store, releaseId: string, sequence = 1, opts: { standby?: boolean; channel?: string; issuedAt?: string } = {}): Promise<void> {
  const d = (c: string): string => `sha256:${c.repeat(64)}`;
  await store.db
    .insertInto("releases")
    .values({
      release_id: releaseId,
      channel: opts.channel ?? "stable",
      sequence,
      statement_digest: d("a"),
      image: "oci:/x:1",
      image_digest: d("b"),
      repository: "x",
      lock_digest: d("c"),
      lock_fingerprint: `blake3:${"d".repeat(64)}`,
      bundle_digest: d("e"),
      statement: "{}",
      notes: "",
      issued_at: opts.issuedAt ?? "2026-12-05T09:00:00.000Z",
      expires_at: "2027-12-05T09:00:00.000Z",
      published_at: "2026-12-05T09:00:00.000Z",
      published_by: "test",
      withdrawn_at: null,
      standby: opts.standby === true ? 1 : 0,
    })
    .execute();
}

/**
 * One poll of GET /v1/releases/latest as the node (`cred`): the control plane
 * records the answered release as offered to it, which an ack needs.
 */
export async function pollLatest(cp: TestCp, cred: string, channel = "stable"): Promise<string> {
  const r = await cp.app.inject({ method: "GET", url: `/v1/releases/latest?channel=${channel}`, headers: bearer(cred) });
  expect(r.statusCode, r.body).toBe(200);
  return r.json<{ release_id: string }>().release_id;
}

/** Rows in a table, through the store. */
export async function rowCount(store: Store, table: "events" | "node_acks" | "nodes" | "node_offers"): Promise<number> {
  const r = await store.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Asserts a 4xx problem-details answer with `code` whose detail names `field`. */
export function expectProblem(res: { statusCode: number; headers: Record<string, unknown>; body: string }, status: number, code: string, field?: string): void {
  expect(res.statusCode, res.body).toBe(status);
  expect(String(res.headers["content-type"])).toMatch(/^application\/problem\+json/);
  const p = JSON.parse(res.body) as { code: string; detail: string };
  expect(p.code).toBe(code);
  if (field !== undefined) expect(p.detail).toContain(field);
}
