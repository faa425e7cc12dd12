import type { FastifyInstance } from "fastify";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

/**
 * The control plane's Prometheus metrics: one registry per app (tests build
 * many apps in one process), exposed at /metrics. Areas increment theirs
 * through `app.metrics` / the AreaDeps they are given.
 */
export interface CpMetrics {
  registry: Registry;
  httpRequests: Counter<"method" | "route" | "status">;
  httpDuration: Histogram<"method" | "route">;
  /** Incremented by the events area (inserted vs deduped). */
  eventsIngested: Counter<"result">;
  /** Incremented by the rollouts area when a plan is created. */
  rolloutPlans: Counter;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): CpMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics === true) collectDefaultMetrics({ register: registry, prefix: "cp_" });
  return {
    registry,
    httpRequests: new Counter({ name: "cp_http_requests_total", help: "HTTP requests answered, by route name and status", labelNames: ["method", "route", "status"], registers: [registry] }),
    httpDuration: new Histogram({
      name: "cp_http_request_duration_seconds",
      help: "HTTP request duration in seconds, by route name",
      labelNames: ["method", "route"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    eventsIngested: new Counter({ name: "cp_events_ingested_total", help: "Events received by POST /v1/events, by result (inserted, deduped)", labelNames: ["result"], registers: [registry] }),
    rolloutPlans: new Counter({ name: "cp_rollout_plans_total", help: "Rollout plans created", registers: [registry] }),
  };
}

/** Counts and times every answered request by its route NAME (bounded label values; unknown paths are "unmatched"). */
export function instrument(app: FastifyInstance, m: CpMetrics): void {
  app.addHook("onResponse", (req, reply, done) => {
    const route = req.routeOptions.config.route ?? "unmatched";
    m.httpRequests.inc({ method: req.method, route, status: String(reply.statusCode) });
    m.httpDuration.observe({ method: req.method, route }, reply.elapsedTime / 1000);
    done();
  });
}
