import type { FastifyPluginAsync } from "fastify";
import { z } from "zod";
import { AckRequest, Cursor, HeartbeatRequest, Labels, Limit, Node, NodeId, NodePage } from "../../cpapi/index.js";
import { isoTime } from "../../lib/index.js";
import type { AreaDeps } from "../area.js";
import { withStoreErrors } from "../db/store-errors.js";
import { RequestInvalid } from "../errors.js";
import { jsonSchemaOf } from "../validation.js";
import { getNode, listNodes, nodeById, recordAck, recordHeartbeat } from "./store.js";
import type { AckHook } from "./store.js";

/**
 * The nodes area: heartbeat and ack (node credentials, only as themselves —
 * the auth hook checks `:node_id`), list and get (fleet:read).
 */
const NodeParams = z.strictObject({ node_id: NodeId });
const ListQuery = z.strictObject({
  /** `label=k=v`, repeated = AND. */
  label: z.union([z.string().max(200), z.array(z.string().max(200)).max(16)]).optional(),
  cursor: Cursor.optional(),
  limit: Limit,
});

/** Parses `k=v` selectors; a bad one is a 400 naming `label[i]`. */
export function parseLabelSelectors(label: string | readonly string[] | undefined): [string, string][] {
  const list = label === undefined ? [] : typeof label === "string" ? [label] : label;
  return list.map((s, i) => {
    const eq = s.indexOf("=");
    const pair = eq > 0 ? { [s.slice(0, eq)]: s.slice(eq + 1) } : undefined;
    if (!pair || !Labels.safeParse(pair).success) {
      throw new RequestInvalid(`invalid query: label[${i}]: expected key=value with a label key of a-z 0-9 . / _ - and a value of at most 63 characters`);
    }
    return [s.slice(0, eq), s.slice(eq + 1)];
  });
}

/** Node cursors are the last node_id of a page, base64url-encoded (opaque to clients). */
export function nodeCursor(nodeId: string): string {
  return Buffer.from(nodeId, "utf8").toString("base64url");
}

function afterOf(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const id = Buffer.from(cursor, "base64url").toString("utf8");
  if (!NodeId.safeParse(id).success) throw new RequestInvalid("invalid query: cursor: not a cursor this server issued (pass next_cursor back unchanged)");
  return id;
}

export interface NodesAreaOptions {
  /** Runs inside each ack's transaction (the rollouts area feeds acks to the plan that assigned the node). */
  onAck?: AckHook;
}

export function nodesArea(deps: AreaDeps, opts: NodesAreaOptions = {}): FastifyPluginAsync {
  const { store, clock } = deps;
  return (app) => {
    app.post<{ Params: z.infer<typeof NodeParams>; Body: HeartbeatRequest }>(
      "/v1/nodes/:node_id/heartbeat",
      { config: { route: "heartbeat" }, schema: { params: jsonSchemaOf(NodeParams), body: jsonSchemaOf(HeartbeatRequest), response: { 200: jsonSchemaOf(Node, "output") } } },
      async (req, reply) => {
        const { node_id } = req.params;
        await withStoreErrors(reply, "the heartbeat", () => recordHeartbeat(store.db, node_id, req.body, isoTime(clock)));
        // The node as stored, without its ack history (a heartbeat every few seconds should not carry it).
        return nodeById(store.db, node_id);
      },
    );
    app.post<{ Params: z.infer<typeof NodeParams>; Body: AckRequest }>(
      "/v1/nodes/:node_id/ack",
      { config: { route: "ack" }, schema: { params: jsonSchemaOf(NodeParams), body: jsonSchemaOf(AckRequest), response: { 200: jsonSchemaOf(Node, "output") } } },
      async (req, reply) => {
        const { node_id } = req.params;
        await withStoreErrors(reply, "the ack", () => recordAck(store.db, node_id, req.body, isoTime(clock), opts.onAck));
        return nodeById(store.db, node_id);
      },
    );
    app.get<{ Querystring: z.infer<typeof ListQuery> }>(
      "/v1/nodes",
      { config: { route: "listNodes" }, schema: { querystring: jsonSchemaOf(ListQuery), response: { 200: jsonSchemaOf(NodePage, "output") } } },
      async (req) => {
        const labels = parseLabelSelectors(req.query.label);
        const after = afterOf(req.query.cursor);
        const page = await listNodes(store.db, store.dialect, { labels, limit: req.query.limit, ...(after !== undefined ? { after } : {}) });
        return { nodes: page.nodes, next_cursor: page.last === undefined ? null : nodeCursor(page.last) };
      },
    );
    app.get<{ Params: z.infer<typeof NodeParams> }>(
      "/v1/nodes/:node_id",
      { config: { route: "getNode" }, schema: { params: jsonSchemaOf(NodeParams), response: { 200: jsonSchemaOf(Node, "output") } } },
      async (req) => getNode(store.db, req.params.node_id),
    );
    return Promise.resolve();
  };
}
