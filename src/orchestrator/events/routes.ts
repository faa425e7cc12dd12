import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { z } from "zod";
import { Cursor, EventPage, IngestRequest, IngestResult, Limit, MAX_EVENT_ATTRIBUTES_BYTES, NodeId, Timestamp } from "../../cpapi/index.js";
import type { IngestEvent } from "../../cpapi/index.js";
import { isoTime, parseRfc3339 } from "../../lib/index.js";
import type { AreaDeps } from "../area.js";
import { principalOf } from "../auth/index.js";
import { withStoreErrors } from "../db/store-errors.js";
import { OrchestratorError, RequestInvalid } from "../errors.js";
import { utc } from "../nodes/store.js";
import { jsonSchemaOf } from "../validation.js";
import { ingestEvents, queryEvents } from "./store.js";
import type { IngestOptions } from "./store.js";

/** An event's `attributes` as JSON, at most (cpapi IngestEvent says so; zod cannot measure it). */
export const MAX_ATTRIBUTES_BYTES = MAX_EVENT_ATTRIBUTES_BYTES;

const EventQueryString = z.strictObject({
  node_id: NodeId.optional(),
  event_type: z.string().max(128).optional(),
  since: Timestamp.optional(),
  until: Timestamp.optional(),
  cursor: Cursor.optional(),
  limit: Limit,
});

/** Event cursors are the last ingest_seq of a page (opaque to clients). */
export function eventCursor(seq: number): string {
  return Buffer.from(`s${seq}`, "utf8").toString("base64url");
}

function beforeOf(cursor: string | undefined): number | undefined {
  if (cursor === undefined) return undefined;
  const m = /^s([0-9]{1,15})$/.exec(Buffer.from(cursor, "base64url").toString("utf8"));
  if (!m?.[1]) throw new RequestInvalid("invalid query: cursor: not a cursor this server issued (pass next_cursor back unchanged)");
  return Number(m[1]);
}

/**
 * How far past the control plane's time an event may be dated. A node clock a
 * few hours off is a misconfiguration to tolerate (time zones, a device
 * without RTC just synced); an event dated years ahead would sit at the top of
 * every newest-first time query and inside every future gate window.
 */
export const EVENT_MAX_FUTURE_MS = 24 * 60 * 60 * 1000;

/**
 * A far-future timestamp refuses the whole batch (400 naming
 * `events[i].timestamp`), like any other invalid event: the batch is one
 * transaction, and the WAL exporter bisects a refused batch down to the one
 * event and dead-letters it, so the rest still arrives.
 */
function checkTimes(events: readonly IngestEvent[], nowMs: number): void {
  const limit = nowMs + EVENT_MAX_FUTURE_MS;
  events.forEach((e, i) => {
    const ms = parseRfc3339(e.timestamp) ?? NaN;
    if (!(ms <= limit)) {
      throw new RequestInvalid(`invalid body: events[${i}].timestamp: ${e.timestamp} is more than ${EVENT_MAX_FUTURE_MS / 3_600_000} hours after the control plane's time ${new Date(nowMs).toISOString()} (check the node's clock); nothing of the batch was stored`);
    }
  });
}

/** Checks what the schema cannot, before anything is written: times, attribute sizes, then who may report what. */
function checkBatch(req: FastifyRequest, events: readonly IngestEvent[], nowMs: number): void {
  checkTimes(events, nowMs);
  events.forEach((e, i) => {
    if (e.attributes === undefined) return;
    const bytes = Buffer.byteLength(JSON.stringify(e.attributes), "utf8");
    if (bytes > MAX_ATTRIBUTES_BYTES) throw new RequestInvalid(`invalid body: events[${i}].attributes: at most ${MAX_ATTRIBUTES_BYTES} bytes as JSON (this one is ${bytes})`);
  });
  const p = principalOf(req);
  if (p.kind !== "node") return;
  const i = events.findIndex((e) => e.node_id !== p.node_id);
  const other = events[i];
  if (other) {
    throw new OrchestratorError("NODE_IDENTITY_MISMATCH", `events[${i}].node_id: node ${p.node_id} may not report as node ${other.node_id}; nothing of the batch was stored`);
  }
}

export function eventsArea(deps: AreaDeps, opts: IngestOptions = {}): FastifyPluginAsync {
  const { store, clock } = deps;
  return (app) => {
    app.post<{ Body: IngestRequest }>(
      "/v1/events",
      { config: { route: "ingestEvents" }, schema: { body: jsonSchemaOf(IngestRequest), response: { 200: jsonSchemaOf(IngestResult, "output") } } },
      async (req, reply) => {
        const { events } = req.body;
        checkBatch(req, events, clock.now());
        const r = await withStoreErrors(reply, `the batch of ${events.length} event(s)`, () => ingestEvents(store, events, isoTime(clock), opts));
        app.metrics.eventsIngested.inc({ result: "inserted" }, r.inserted);
        app.metrics.eventsIngested.inc({ result: "deduped" }, r.deduped);
        return r;
      },
    );
    app.get<{ Querystring: z.infer<typeof EventQueryString> }>(
      "/v1/events",
      { config: { route: "queryEvents" }, schema: { querystring: jsonSchemaOf(EventQueryString), response: { 200: jsonSchemaOf(EventPage, "output") } } },
      async (req) => {
        const q = req.query;
        const before = beforeOf(q.cursor);
        const page = await queryEvents(store.db, {
          limit: q.limit,
          ...(q.node_id !== undefined ? { node_id: q.node_id } : {}),
          ...(q.event_type !== undefined ? { event_type: q.event_type } : {}),
          ...(q.since !== undefined ? { since: utc(q.since) } : {}),
          ...(q.until !== undefined ? { until: utc(q.until) } : {}),
          ...(before !== undefined ? { before } : {}),
        });
        return { events: page.events, count: page.events.length, next_cursor: page.last === undefined ? null : eventCursor(page.last) };
      },
    );
    return Promise.resolve();
  };
}
