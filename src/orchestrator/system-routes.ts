import type { FastifyPluginAsync } from "fastify";
import { sql } from "kysely";
import type { AreaDeps } from "./area.js";
import { OrchestratorError } from "./errors.js";
import type { CpMetrics } from "./metrics.js";

/**
 * The public routes: /healthz (the process is up), /readyz (the store answers
 * a query; 503 STORE_UNAVAILABLE otherwise), /metrics (Prometheus text) and
 * /openapi.json (generated from the route schemas).
 */
export function systemRoutes(deps: AreaDeps, metrics: CpMetrics, openapi: () => unknown): FastifyPluginAsync {
  return (app) => {
    app.get("/healthz", { config: { route: "healthz" }, schema: { tags: ["system"] } }, () => ({ status: "ok" }));
    app.get("/readyz", { config: { route: "readyz" }, schema: { tags: ["system"] } }, async (req) => {
      try {
        await sql`select 1`.execute(deps.store.db);
      } catch (e) {
        req.log.warn({ err: e }, "readiness: the store did not answer");
        throw new OrchestratorError("STORE_UNAVAILABLE", "the store does not answer queries");
      }
      return { status: "ready", store: deps.store.dialect };
    });
    app.get("/metrics", { config: { route: "metrics" }, schema: { tags: ["system"] } }, async (_req, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    });
    app.get("/openapi.json", { config: { route: "openapi" }, schema: { tags: ["system"] } }, () => openapi());
    return Promise.resolve();
  };
}
