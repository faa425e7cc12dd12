import Fastify, { LogController } from "fastify";
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { AutonomyError } from "../../lib/index.js";
import { problem, problemDetails, sendProblem } from "../../lib/index.js";
import type { Logger } from "../../observability/index.js";
import { EdgeError } from "../errors.js";
import type { EdgeErrorCode } from "../errors.js";
import type { SegmentKind } from "../types.js";
import type { BandwidthChange, PurgeRequest, RelayControl } from "./control-types.js";

/** Options of {@link createControlServer}. */
export interface ControlServerOptions {
  control: RelayControl;
  /** Largest segment `POST /v1/relay/segments` accepts ([relay] max_segment_bytes). */
  maxSegmentBytes: number;
  /** Where 5xx failures are logged (their message is not sent to the client). */
  log?: Logger;
}

/** HTTP status of the edge codes a control request can end with; others follow problemFromError's rule. */
const STATUS: Partial<Record<EdgeErrorCode, number>> = {
  DEADLETTER_NOT_FOUND: 404,
  UNKNOWN_PEER: 404,
  SEGMENT_MISSING: 404,
  SEGMENT_TOO_LARGE: 413,
  STORAGE_CEILING_EXCEEDED: 507,
  EDGE_CONFIG_INVALID: 400,
  RELAY_DISABLED: 409,
};
const statusOf = (e: AutonomyError): number | undefined => (e instanceof EdgeError ? STATUS[e.code] : undefined);

const JSON_BODY_LIMIT = 64 * 1024;
const SEGMENT_ID = "^[0-9a-f]{64}$";
const PEER_ID = "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$";
const HHMM = "^([01][0-9]|2[0-3]):[0-5][0-9]$";

const pairParams = {
  type: "object",
  required: ["seg", "peer"],
  properties: { seg: { type: "string", pattern: SEGMENT_ID }, peer: { type: "string", pattern: PEER_ID } },
  additionalProperties: false,
} as const;

const bandwidthBody = {
  type: "object",
  minProperties: 1,
  properties: {
    bytes_per_second: { type: "integer", minimum: 0 },
    daily_quota_bytes: { type: "integer", minimum: 0 },
    quota_reset_utc: { type: "string", pattern: HHMM },
  },
  additionalProperties: false,
} as const;

const purgeBody = {
  type: "object",
  required: ["force"],
  properties: { segment_id: { type: "string", pattern: SEGMENT_ID }, peer_id: { type: "string", pattern: PEER_ID }, force: { type: "boolean" } },
  additionalProperties: false,
} as const;

/**
 * The edged control API (HTTP/1.1, served on the unix socket by
 * {@link listenControlSocket}): JSON in and out, every error as problem
 * details with its stable code. The socket's file mode (0600) is the access
 * control: whoever may open it is the node's operator.
 *
 * ### Examples
 * ```ts
 * const app = await createControlServer({ control, maxSegmentBytes: 64 << 20 });
 * const res = await app.inject({ method: "GET", url: "/v1/relay/status" });
 * ```
 */
export async function createControlServer(opts: ControlServerOptions): Promise<FastifyInstance> {
  // Typed as Fastify's base logger so the app is a plain FastifyInstance.
  // At warn at least: Fastify's own info line ("Server listening at …", untagged) is noise beside edged's
  // control_socket_listening event; failures (error) still reach edged's log.
  const loggerInstance: FastifyBaseLogger | undefined = opts.log?.child({ component: "control_server" }, { level: opts.log.levelVal > 40 ? opts.log.level : "warn" });
  const app = Fastify({
    bodyLimit: JSON_BODY_LIMIT,
    ...(loggerInstance ? { loggerInstance } : { logger: false }),
    // One line per control request would drown the relay's own lines; failures are logged by problemDetails.
    logController: new LogController({ disableRequestLogging: true }),
  });
  await app.register(problemDetails, { statusOf, bodyLimit: JSON_BODY_LIMIT });
  // JSON only, plus raw bytes for the one segment route.
  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser("application/octet-stream", { parseAs: "buffer", bodyLimit: opts.maxSegmentBytes }, (_req, body, done) => {
    done(null, body);
  });
  const c = opts.control;

  app.get("/v1/relay/status", async () => c.status());
  app.get("/v1/relay/config", async () => c.config());
  app.post<{ Body: BandwidthChange }>("/v1/relay/config/bandwidth", { schema: { body: bandwidthBody } }, async (req) => c.setBandwidth(req.body));

  app.get<{ Querystring: { limit: number } }>(
    "/v1/relay/deadletter",
    { schema: { querystring: { type: "object", properties: { limit: { type: "integer", minimum: 1, maximum: 10_000, default: 50 } }, additionalProperties: false } } },
    async (req) => ({ deadletters: await c.deadletterList(req.query.limit) }),
  );
  app.get<{ Params: { seg: string; peer: string } }>("/v1/relay/deadletter/:seg/:peer", { schema: { params: pairParams } }, async (req) => c.deadletterInspect(req.params.seg, req.params.peer));
  app.post<{ Params: { seg: string; peer: string } }>("/v1/relay/deadletter/:seg/:peer/retry", { schema: { params: pairParams } }, async (req) => c.deadletterRetry(req.params.seg, req.params.peer));
  app.post<{ Body: PurgeRequest }>("/v1/relay/deadletter/purge", { schema: { body: purgeBody } }, async (req) => c.deadletterPurge(req.body));
  app.post("/v1/storage/verify", async () => c.storageVerify());

  app.post<{ Body: Buffer; Querystring: { kind: SegmentKind } }>(
    "/v1/relay/segments",
    {
      bodyLimit: opts.maxSegmentBytes,
      schema: { querystring: { type: "object", properties: { kind: { type: "string", enum: ["data", "release"], default: "data" } }, additionalProperties: false } },
    },
    async (req, reply) => {
      if (!Buffer.isBuffer(req.body)) return sendProblem(reply, problem("MEDIA_TYPE_UNSUPPORTED", 415, "send the segment's bytes as application/octet-stream"));
      if (req.body.byteLength === 0) return sendProblem(reply, problem("REQUEST_INVALID", 400, "an empty segment cannot be relayed"));
      const info = await c.enqueue(new Uint8Array(req.body.buffer, req.body.byteOffset, req.body.byteLength), req.query.kind);
      return reply.code(info.created ? 201 : 200).send(info);
    },
  );
  return app;
}
