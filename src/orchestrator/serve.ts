import type { FastifyInstance } from "fastify";
import { UsageError, errnoCode, isoTime, messageOf, systemClock, writeFileAtomic } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import type { Logger } from "../observability/index.js";
import { buildApp } from "./app.js";
import { openStore } from "./db/connect.js";
import type { Store } from "./db/connect.js";
import { migrateStore } from "./db/migrate.js";
import type { MigrationReport } from "./db/migrate.js";
import { MIGRATIONS } from "./db/migrations.js";
import { OrchestratorError } from "./errors.js";
import { SCHEDULER_INTERVAL_MS } from "./plans/scheduler.js";
import { bootstrapOwnerToken } from "./identity/store.js";
import type { IssuedToken } from "./identity/store.js";

/** Options of {@link startControlPlane}. */
export interface ServeOptions {
  /** SQLite file path or postgres:// URL. */
  db: string;
  host: string;
  port: number;
  log: Logger;
  clock?: Clock;
  /** Also write a bootstrap token to this file (0600, durable), for automation. */
  bootstrapTokenFile?: string | undefined;
  /** Called once with a bootstrap token made on this start (the caller shows it once). */
  onBootstrapToken?: (t: IssuedToken) => void;
  latestCacheMs?: number;
  /** The rollout scheduler's interval (ms). Default SCHEDULER_INTERVAL_MS (1 s). */
  schedulerMs?: number;
}

export interface ServingControlPlane {
  url: string;
  app: FastifyInstance;
  store: Store;
  migrations: MigrationReport;
  /** True when this start made the bootstrap owner token. */
  bootstrapped: boolean;
  /** Stops accepting, finishes in-flight requests, closes the store. */
  close(): Promise<void>;
}

/**
 * `autonomy serve`: opens and migrates the store, makes the bootstrap owner
 * token on a store with none (handed to `onBootstrapToken`, and written to
 * `bootstrapTokenFile` when given; never logged), builds the app and listens.
 */
export async function startControlPlane(o: ServeOptions): Promise<ServingControlPlane> {
  const clock = o.clock ?? systemClock;
  const store = await openStore(o.db);
  try {
    const migrations = await migrateStore(store, MIGRATIONS, clock);
    const boot = await bootstrapOwnerToken(store, clock);
    if (boot) {
      if (o.bootstrapTokenFile !== undefined) {
        try {
          await writeFileAtomic(o.bootstrapTokenFile, `${boot.token}\n`, 0o600);
        } catch (e) {
          // Nobody would know the token: drop it, so the next start bootstraps again.
          await store.db.deleteFrom("tokens").where("id", "=", boot.token_id).execute();
          throw new UsageError(`cannot write the bootstrap token to ${o.bootstrapTokenFile}: ${errnoCode(e) ?? messageOf(e)}`, "pass a --bootstrap-token-file in a writable directory; no token was kept, the next start makes a new one");
        }
      }
      o.onBootstrapToken?.(boot);
      o.log.info({ token_id: boot.token_id, at: isoTime(clock) }, "bootstrap owner token created (shown once on stderr)");
    }
    const app = await buildApp({ store, clock, log: o.log, processMetrics: true, rolloutSchedulerMs: o.schedulerMs ?? SCHEDULER_INTERVAL_MS, ...(o.latestCacheMs !== undefined ? { latestCacheMs: o.latestCacheMs } : {}) });
    let url: string;
    try {
      url = await app.listen({ host: o.host, port: o.port });
    } catch (e) {
      await app.close().catch(() => undefined);
      throw new OrchestratorError("CP_LISTEN_FAILED", `cannot listen on ${o.host}:${o.port}: ${errnoCode(e) ?? messageOf(e)}`, { cause: e });
    }
    return {
      url,
      app,
      store,
      migrations,
      bootstrapped: boot !== undefined,
      close: async () => {
        await app.close();
        await store.close();
      },
    };
  } catch (e) {
    await store.close().catch(() => undefined);
    throw e;
  }
}
