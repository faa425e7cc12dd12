import Fastify, { LogController } from "fastify";
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, RouteOptions } from "fastify";
import swagger from "@fastify/swagger";
import { problemDetails, systemClock } from "../lib/index.js";
import type { Clock } from "../lib/index.js";
import { lazyChildLoggerFactory } from "../observability/index.js";
import type { Logger } from "../observability/index.js";
import type { AreaDeps } from "./area.js";
import { authHook, routeDecl } from "./auth/index.js";
import { PrincipalCache } from "./auth/principal-cache.js";
import type { Store } from "./db/connect.js";
import { storeErrorOf } from "./db/store-errors.js";
import { OrchestratorError, orchestratorStatusOf } from "./errors.js";
import { identityRoutes } from "./identity/routes.js";
import { nodesArea } from "./nodes/routes.js";
import { offerRecorder } from "./nodes/offers.js";
import { eventsArea } from "./events/routes.js";
import { createMetrics, instrument } from "./metrics.js";
import type { CpMetrics } from "./metrics.js";

import { rolloutsArea } from "./plans/routes.js";
import type { RolloutScheduler } from "./plans/scheduler.js";
import { releaseRoutes } from "./releases/routes.js";
import type { PublishTrust } from "./releases/statement.js";
import { systemRoutes } from "./system-routes.js";
import { useZodValidation } from "./validation.js";

declare module "fastify" {
  interface FastifyInstance {
    /** The rollouts area's scheduler (started by `autonomy serve`, or by `rolloutSchedulerMs`; tests call tickAll()). */
    rollouts: { scheduler: RolloutScheduler };
    /** The app's Prometheus metrics (one registry per app); areas increment theirs. */
    metrics: CpMetrics;
    /** Every route registered, with its cpapi ROUTES name (the route-table test reads it). */
    cpRoutes: RegisteredRoute[];
  }
}

/** A route as registered: method, URL and its name in cpapi ROUTES. */
export interface RegisteredRoute {
  method: string;
  url: string;
  route: string | undefined;
}

/**
 * Refuses, at registration, a route that is not declared in cpapi ROUTES with
 * the same method and URL (the auth hook would refuse its requests anyway;
 * this makes the mistake fail at start-up, not at the first call).
 */
function checkRouteDeclared(r: RouteOptions): RegisteredRoute {
  const methods = Array.isArray(r.method) ? r.method : [r.method];
  const config = r.config as { route?: string } | undefined;
  const name = config?.route;
  const decl = routeDecl(name);
  for (const m of methods) {
    const method = m === "HEAD" ? "GET" : m;
    if (!decl || decl.method !== method || decl.url !== r.url) {
      throw new OrchestratorError("PERMISSION_DENIED", `route ${m} ${r.url} is not declared in cpapi ROUTES (config.route ${name === undefined ? "missing" : JSON.stringify(name)}); every route needs a declared permission`);
    }
  }
  return { method: methods.join(","), url: r.url, route: name };
}

/** Largest request body: a release (a 128 KiB statement envelope plus notes) or a batch of 1,000 events fits. */
export const BODY_LIMIT = 4 * 1024 * 1024;

/** Default lifetime of an authenticated token's cached lookup (ms). */
export const AUTH_CACHE_MS = 1000;

/** Default lifetime of the in-memory latest-release cache (ms). */
export const LATEST_CACHE_MS = 1000;

/** Options of {@link buildApp}. */
export interface BuildAppOptions {
  store: Store;
  log: Logger;
  clock?: Clock;
  /** Largest accepted request body in bytes. Default {@link BODY_LIMIT}. */
  bodyLimit?: number;
  /**
   * How long GET /v1/releases/latest serves a channel from memory. A publish
   * through this process is visible at once; one through ANOTHER server (several
   * servers on one PostgreSQL) after at most this long. 0 disables the cache.
   * Default {@link LATEST_CACHE_MS}.
   */
  latestCacheMs?: number;
  /**
   * How long an authenticated token's lookup is reused (ms): a revocation made in
   * the store takes effect within it; expiry is checked on every request. 0 looks
   * every request up. Default {@link AUTH_CACHE_MS}.
   */
  authCacheMs?: number;
  /** Also export Node's process metrics (cp_process_*). Default false (tests build many apps). */
  processMetrics?: boolean;
  /** Release keys: POST /v1/releases refuses a statement not signed by `threshold` of them (422). Absent: advisory. */
  releaseTrust?: PublishTrust | undefined;
  /** Serve HTTPS with this PEM certificate and key (see `autonomy serve --tls-cert/--tls-key`). */
  tls?: { cert: Buffer; key: Buffer } | undefined;
  /**
   * Start the rollout scheduler with this interval (ms). Default: not started
   * (tests tick by hand with `app.rollouts.scheduler.tickAll()`); `autonomy
   * serve` starts it. It stops when the app closes.
   */
  rolloutSchedulerMs?: number;
}

/**
 * The control plane's HTTP app (not listening): problem details, the zod
 * validator, metrics, the auth hook, then one plugin per API area. The store
 * must already be migrated (migrateStore).
 *
 * ### Examples
 * ```ts
 * const store = await openStore("./autonomy-cp.db");
 * await migrateStore(store, MIGRATIONS);
 * const app = await buildApp({ store, log });
 * await app.listen({ host: "127.0.0.1", port: 8888 });
 * ```
 */
export async function buildApp(opts: BuildAppOptions): Promise<FastifyInstance> {
  const clock = opts.clock ?? systemClock;
  const deps: AreaDeps = { store: opts.store, clock, log: opts.log };
  const bodyLimit = opts.bodyLimit ?? BODY_LIMIT;
  // Typed as Fastify's base logger so the app is a plain FastifyInstance (areas take that type).
  const loggerInstance: FastifyBaseLogger = opts.log;
  // With TLS it is an HTTPS server; typed as the plain instance (routes and inject do not depend on the transport).
  const app = Fastify({
    ...(opts.tls ? { https: { cert: opts.tls.cert, key: opts.tls.key } } : {}),
    loggerInstance,
    // Per-request log lines would cost more than the poll route itself; /metrics counts requests instead.
    logController: new LogController({ disableRequestLogging: true }),
    // req.log's pino child (redaction over its bindings) only when a request logs: see src/observability/request-logger.ts.
    childLoggerFactory: lazyChildLoggerFactory,
    bodyLimit,
    return503OnClosing: true,
  });
  const metrics = createMetrics({ defaultMetrics: opts.processMetrics === true });
  app.decorate("metrics", metrics);
  useZodValidation(app);
  // A busy store is a 503 STORE_BUSY with Retry-After (the client retries), a full disk a 507 STORE_FULL, never a 500.
  const mapError = (err: unknown, reply: FastifyReply): unknown => storeErrorOf(err, reply) ?? err;
  await app.register(problemDetails, { bodyLimit, statusOf: orchestratorStatusOf, mapError });
  instrument(app, metrics);
  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: { title: "AutonomyOps control plane", version: "1" },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });
  app.decorate("cpRoutes", [] as RegisteredRoute[]);
  const recordOffer = offerRecorder(deps);
  app.addHook("onRoute", (r) => {
    app.cpRoutes.push(checkRouteDeclared(r));
    // What the poll route answers a node is recorded as offered to it: an ack must name an offered release (nodes/offers.ts).
    if ((r.config as { route?: string } | undefined)?.route === "latestRelease") r.onSend = [...(r.onSend === undefined ? [] : Array.isArray(r.onSend) ? r.onSend : [r.onSend]), recordOffer];
  });
  const authCache = new PrincipalCache(clock, opts.authCacheMs ?? AUTH_CACHE_MS);
  app.addHook("onRequest", authHook(opts.store, clock, { cache: authCache }));
  await app.register(systemRoutes(deps, metrics, () => app.swagger()));
  // A revocation through this server takes effect here at once (other servers: within their cache lifetime).
  await app.register(identityRoutes({ ...deps, onRevoke: () => authCache.clear() }));
  const latestCacheMs = opts.latestCacheMs ?? LATEST_CACHE_MS;
  // Rollouts reach the other areas only through two hooks: the poll route asks for a node's
  // assigned release, and every ack is fed to the plan that assigned the node (same transaction).
  const rollouts = rolloutsArea(deps, { assignmentCacheMs: latestCacheMs, ...(opts.rolloutSchedulerMs !== undefined ? { schedulerMs: opts.rolloutSchedulerMs } : {}) });
  app.decorate("rollouts", { scheduler: rollouts.scheduler });
  await app.register(releaseRoutes(deps, { latestCacheMs, assignedReleaseOf: rollouts.assignedReleaseOf, onWithdrawn: rollouts.onReleaseWithdrawn, trust: opts.releaseTrust }));
  await app.register(nodesArea(deps, { onAck: rollouts.onAck }));
  await app.register(eventsArea(deps));
  await app.register(rollouts.plugin);
  if (opts.rolloutSchedulerMs !== undefined) app.addHook("onReady", () => {
    rollouts.scheduler.start();
    return Promise.resolve();
  });
  return app;
}
