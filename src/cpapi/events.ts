import { z } from "zod";
import { Cursor, LockFingerprint, NodeId, ReleaseId, Timestamp } from "./common.js";

/**
 * POST /v1/events (events:write): idempotent on `event_id`, so the WAL
 * exporter resends freely. The WAL exporter's ids are
 * `<node_id>:wal:<wal generation>:<seq>` (unique across WAL resets; docs/wal.md).
 */
export const MAX_EVENTS_PER_BATCH = 1000;

/** Largest `attributes` of one event, in bytes of its JSON (UTF-8); the server refuses more (400). */
export const MAX_EVENT_ATTRIBUTES_BYTES = 16 * 1024;

/** Event types whose attributes the control plane reads (behaviour gates, docs/control-plane.md "Event shapes"). */
export const DECISION_EVENT_TYPE = "ai.policy.decision";
export const TOOL_RESULT_EVENT_TYPE = "ai.tool.result";

export const IngestEvent = z.strictObject({
  event_id: z.string().min(1).max(256),
  event_type: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, "an event type is 1–128 of A-Z a-z 0-9 _ . : -"),
  node_id: NodeId,
  timestamp: Timestamp,
  lock_fingerprint: LockFingerprint.optional(),
  release_id: ReleaseId.optional(),
  /** Event-specific fields (the WAL event's body); at most MAX_EVENT_ATTRIBUTES_BYTES as JSON. */
  attributes: z.record(z.string(), z.unknown()).optional(),
});
export type IngestEvent = z.infer<typeof IngestEvent>;

export const IngestRequest = z.strictObject({ events: z.array(IngestEvent).min(1).max(MAX_EVENTS_PER_BATCH) });
export type IngestRequest = z.infer<typeof IngestRequest>;

/** received = events in the batch; inserted + deduped = received. */
export const IngestResult = z.looseObject({ received: z.number().int(), inserted: z.number().int(), deduped: z.number().int() });
export type IngestResult = z.infer<typeof IngestResult>;

export const StoredEvent = IngestEvent.extend({
  /** Server-assigned insertion order (the cursor orders by it). */
  ingest_seq: z.number().int(),
  received_at: Timestamp,
}).loose();
export type StoredEvent = z.infer<typeof StoredEvent>;

/** GET /v1/events?node_id=&event_type=&since=&until=&cursor=&limit= (events:read): newest first. */
export const EventPage = z.looseObject({ events: z.array(StoredEvent), count: z.number().int(), next_cursor: Cursor.nullable() });
export type EventPage = z.infer<typeof EventPage>;
