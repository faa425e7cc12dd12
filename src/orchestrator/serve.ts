import type { FastifyInstance } from "fastify";
import { UsageError, errnoCode, isoTime, messageOf, systemClock, writeFileAtomic } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import type { Logger } from "../observability/index.js";
import { createPublicKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isLoopbackHost, readTlsFiles } from "../runtime/index.js";
import { trustedKeys } from "../supplychain/index.js";
import type { PublishTrust } from "./releases/statement.js";
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
  /** Release public keys (SPKI PEM files): publishing then needs a statement signed by `releaseThreshold` of them. */
  releaseKeys?: readonly string[] | undefined;
  /** How many of releaseKeys must have signed (default 1). */
  releaseThreshold?: number | undefined;
  /** PEM certificate and key files: serve HTTPS. Needed to listen outside loopback (unless insecureListen). */
  tls?: { cert: string; key: string } | undefined;
  /** Listen outside loopback WITHOUT TLS anyway (operator tokens and node credentials travel in clear text): explicit only. */
  insecureListen?: boolean;
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

/** Reads the --release-key files (SPKI PEM) into a trusted set; undefined when none (the CP stays advisory). */
async function readReleaseTrust(files: readonly string[] | undefined, threshold = 1): Promise<PublishTrust | undefined> {
  if (files === undefined || files.length === 0) return undefined;
  const keys = await Promise.all(
    files.map(async (f) => {
      try {
        return createPublicKey(await readFile(f));
      } catch (e) {
        throw new UsageError(`cannot read the release key ${f}: ${errnoCode(e) ?? messageOf(e)}`, "pass the release public key (SPKI PEM, as `autonomy keygen` writes it) with --release-key");
      }
    }),
  );
  const trusted = trustedKeys(keys);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > trusted.length) {
    throw new UsageError(`--release-threshold ${threshold} is not between 1 and the ${trusted.length} distinct release key(s)`, "pass a threshold no larger than the number of --release-key files");
  }
  return { keys: trusted, threshold };
}

/**
 * The runtime's rule (docs/security.md): outside loopback only with TLS, since
 * every request carries a bearer secret (operator token, node credential,
 * enrollment token). `insecureListen` is the explicit, logged way around it
 * (a TLS-terminating proxy on the same host, say).
 */
export function checkServeListen(o: Pick<ServeOptions, "host" | "port" | "tls" | "insecureListen" | "log">): void {
  if (isLoopbackHost(o.host) || o.tls !== undefined) return;
  if (o.insecureListen === true) {
    o.log.warn({ host: o.host, port: o.port }, "listening outside loopback WITHOUT TLS (--insecure-listen): bearer tokens travel in clear text");
    return;
  }
  throw new OrchestratorError("CP_LISTEN_REFUSED", `refusing to listen on ${o.host}:${o.port} without TLS: it is not a loopback address, and operator tokens and node credentials would travel in clear text`);
}

/**
 * `autonomy serve`: opens and migrates the store, makes the bootstrap owner
 * token on a store with none (handed to `onBootstrapToken`, and written to
 * `bootstrapTokenFile` when given; never logged), builds the app and listens.
 */
export async function startControlPlane(o: ServeOptions): Promise<ServingControlPlane> {
  const clock = o.clock ?? systemClock;
  checkServeListen(o);
  const tls = o.tls ? await readTlsFiles(o.tls) : undefined;
  const releaseTrust = await readReleaseTrust(o.releaseKeys, o.releaseThreshold);
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
    const app = await buildApp({ store, clock, log: o.log, processMetrics: true, tls, releaseTrust, rolloutSchedulerMs: o.schedulerMs ?? SCHEDULER_INTERVAL_MS, ...(o.latestCacheMs !== undefined ? { latestCacheMs: o.latestCacheMs } : {}) });
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
