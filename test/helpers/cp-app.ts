/**
 * A control-plane app for tests: a fresh migrated store (SQLite in a temp
 * directory by default, or any location openStore takes: the PostgreSQL runs
 * pass a throwaway cluster's URL), the app built on it, and an owner token.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterEach } from "vitest";
import { MIGRATIONS, bootstrapOwnerToken, buildApp, createOperatorToken, migrateStore, openStore } from "../../src/orchestrator/index.js";
import type { BuildAppOptions, Store } from "../../src/orchestrator/index.js";
import type { Role } from "../../src/cpapi/index.js";
import type { Clock } from "../../src/lib/index.js";
import { createLogger } from "../../src/observability/index.js";

export interface TestCp {
  app: FastifyInstance;
  store: Store;
  /** The bootstrap owner token. */
  owner: string;
  clock: Clock & { set(ms: number): void; advance(ms: number): void };
  /** Enrolls `nodeId` through the API (an enrollment token, then POST /v1/nodes/enroll); returns its node credential. */
  enroll(nodeId: string, labels?: Record<string, string>): Promise<string>;
  /** A fresh operator token of `role`. */
  tokenFor(role: Role, opts?: { ttl_seconds?: number }): Promise<string>;
  close(): Promise<void>;
}

/** A clock the test moves by hand (starts at 2026-12-05T10:00:00Z). */
export function manualClock(start = Date.parse("2026-12-05T10:00:00Z")): TestCp["clock"] {
  let t = start;
  return { now: () => t, set: (ms) => void (t = ms), advance: (ms) => void (t += ms) };
}

/** Opens a test control plane; `location` defaults to a new SQLite file. */
export async function openTestCp(opts: { location?: string; clockStart?: number; bodyLimit?: number; latestCacheMs?: number; releaseTrust?: BuildAppOptions["releaseTrust"]; tls?: BuildAppOptions["tls"] } = {}): Promise<TestCp> {
  let dir: string | undefined;
  let location = opts.location;
  if (location === undefined) {
    dir = await mkdtemp(join(tmpdir(), "autonomy-cp-"));
    location = join(dir, "cp.db");
  }
  const store = await openStore(location);
  // A fixed start keeps tests repeatable; a test that sends real-time data (events the server checks against
  // its own time) passes `clockStart: Date.now()`.
  const clock = manualClock(opts.clockStart);
  await migrateStore(store, MIGRATIONS, clock);
  // A second app on the same store (a second server) gets its own owner token.
  const boot = (await bootstrapOwnerToken(store, clock)) ?? (await createOperatorToken(store, clock, { role: "owner", name: "second-server" }));
  const log = createLogger({ name: "autonomy.cp.test", level: "silent" });
  const app = await buildApp({ store, clock, log, ...(opts.bodyLimit !== undefined ? { bodyLimit: opts.bodyLimit } : {}), ...(opts.latestCacheMs !== undefined ? { latestCacheMs: opts.latestCacheMs } : {}), releaseTrust: opts.releaseTrust, ...(opts.tls ? { tls: opts.tls } : {}) });
  await app.ready();
  return {
    app,
    store,
    owner: boot.token,
    clock,
    tokenFor: async (role, o = {}) => (await createOperatorToken(store, clock, { role, name: `test-${role}`, ...o })).token,
    enroll: async (nodeId, labels) => {
      // Labels are the operator's (pinned in the enrollment token): a node cannot choose its own.
      const et = await app.inject({ method: "POST", url: "/v1/enrollment-tokens", headers: bearer(boot.token), payload: { node_id: nodeId, ...(labels ? { labels } : {}) } });
      if (et.statusCode !== 201) throw new Error(`enrollment token: ${et.statusCode} ${et.body}`);
      const res = await app.inject({ method: "POST", url: "/v1/nodes/enroll", headers: bearer(et.json<{ token: string }>().token), payload: { node_id: nodeId } });
      if (res.statusCode !== 201) throw new Error(`enroll: ${res.statusCode} ${res.body}`);
      return res.json<{ credential: string }>().credential;
    },
    close: async () => {
      await app.close();
      await store.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    },
  };
}

/** `Authorization: Bearer …` headers. */
export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

/**
 * Inside a describeDialects block: `open()` gives each test a control plane on
 * a fresh database of the block's dialect (`url()` is that database), closed
 * after the test.
 */
export function perTestCp(db: { fresh(): Promise<string> }): { open: () => Promise<TestCp>; url: () => string } {
  let cp: TestCp | undefined;
  let url = "";
  afterEach(async () => {
    await cp?.close();
    cp = undefined;
  });
  return {
    open: async () => {
      url = await db.fresh();
      cp = await openTestCp({ location: url });
      return cp;
    },
    url: () => url,
  };
}
