import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { z } from "zod";
import { Channel, Cursor, LatestQuery, Limit, PublishReleaseRequest, Release, ReleaseId, ReleasePage } from "../../cpapi/index.js";
import { isoTime } from "../../lib/index.js";
import type { AreaDeps } from "../area.js";
import { principalName, principalOf } from "../auth/index.js";
import { OrchestratorError } from "../errors.js";
import { jsonSchemaOf } from "../validation.js";
import { LatestCache, ifNoneMatchHits } from "./latest-cache.js";
import type { CachedLatest } from "./latest-cache.js";
import { getRelease, latestRelease, listReleases, publishRelease, withdrawRelease } from "./store.js";
import { readPublishRequest } from "./statement.js";
import type { PublishTrust } from "./statement.js";

/** GET /v1/releases query (not in cpapi: clients build it from these three names). */
export const ListReleasesQuery = z.strictObject({ channel: Channel.optional(), cursor: Cursor.optional(), limit: Limit });
const ReleaseParams = z.strictObject({ release_id: ReleaseId });

export interface ReleaseAreaOptions {
  /** How long this process serves a channel's latest release from memory; see {@link LatestCache}. */
  latestCacheMs: number;
  /** When set, POST /v1/releases verifies the statement's signatures against these keys (422 otherwise). */
  trust?: PublishTrust | undefined;
  /**
   * A node's desired release when a rollout decided it (the rollouts area's
   * assignments), or null: the channel's latest then. Only asked for node
   * principals; operators always get the channel's latest.
   */
  assignedReleaseOf?: (nodeId: string) => Promise<string | null>;
  /** Told after a release is withdrawn (the rollouts area pauses the live plans that name it). */
  onWithdrawn?: (releaseId: string) => Promise<void>;
}

/** Releases never change once published: their ready-to-send form is kept by id (bounded). */
const BY_ID_MAX = 4096;

/**
 * Releases: publish (idempotent on the statement, 409 on equivocation), the
 * latest per channel with a strong ETag (`"<release_id>"`, If-None-Match →
 * 304 without a body), history with cursor paging, one release by id. For a
 * NODE principal with a rollout assignment, "latest" is the assigned release
 * (a plan started it, rolled it back, or pinned it): the ETag is still the
 * release id, so the node's poller sees a change exactly when its assignment moves.
 */
export function releaseRoutes(deps: AreaDeps, opts: ReleaseAreaOptions): FastifyPluginAsync {
  const cache = new LatestCache(deps.clock, opts.latestCacheMs);
  // A release's content never changes, but its withdrawal does: an entry is re-read after latestCacheMs (the
  // latest cache's bound on how long another server's withdraw may stay unseen); this server's own withdraw drops it.
  const byId = new Map<string, { ready: CachedLatest; at: number }>();
  const readyById = async (releaseId: string): Promise<CachedLatest> => {
    const hit = byId.get(releaseId);
    if (hit && deps.clock.now() - hit.at < opts.latestCacheMs) return hit.ready;
    const release = await getRelease(deps.store, releaseId);
    const ready = { release, etag: `"${release.release_id}"`, json: JSON.stringify(release) };
    if (byId.size >= BY_ID_MAX) byId.clear();
    byId.set(releaseId, { ready, at: deps.clock.now() });
    return ready;
  };
  const latestOf = async (channel: string): Promise<CachedLatest | undefined> => {
    let got = cache.get(channel);
    if (!got.hit) got = { hit: true, value: cache.fill(channel, got.generation, await latestRelease(deps.store, channel)) };
    return got.value;
  };
  const desiredFor = async (req: FastifyRequest, channel: string): Promise<CachedLatest | undefined> => {
    const p = req.principal;
    if (p?.kind === "node" && opts.assignedReleaseOf) {
      const assigned = await opts.assignedReleaseOf(p.node_id);
      if (assigned !== null) {
        // A withdrawn release never reaches a node, assigned or not (withdraw is the operator's stop button):
        // the node is answered as if it had no assignment, the channel's latest live release.
        const ready = await readyById(assigned);
        if ((ready.release.withdrawn_at ?? null) === null) return ready;
      }
    }
    return latestOf(channel);
  };
  return (app) => {
    app.post(
      "/v1/releases",
      { config: { route: "publishRelease" }, schema: { tags: ["releases"], body: jsonSchemaOf(PublishReleaseRequest), response: { 200: jsonSchemaOf(Release, "output"), 201: jsonSchemaOf(Release, "output") } } },
      async (req, reply) => {
        const body = req.body as PublishReleaseRequest;
        const read = readPublishRequest(body, opts.trust);
        const out = await publishRelease(deps.store, read, { image: body.image, notes: body.notes, published_at: isoTime(deps.clock), published_by: principalName(principalOf(req)), standby: body.standby });
        if (out.created) {
          cache.invalidate(out.release.channel);
          req.log.info({ release_id: out.release.release_id, channel: out.release.channel, sequence: out.release.sequence, standby: body.standby }, "release published");
        }
        return reply.code(out.created ? 201 : 200).header("etag", `"${out.release.release_id}"`).send(out.release);
      },
    );
    app.get(
      "/v1/releases/latest",
      { config: { route: "latestRelease" }, schema: { tags: ["releases"], querystring: jsonSchemaOf(LatestQuery), response: { 200: jsonSchemaOf(Release, "output"), 304: { description: "If-None-Match names the latest release: no body", type: "null" } } } },
      async (req, reply) => {
        const { channel } = req.query as z.infer<typeof LatestQuery>;
        const latest = await desiredFor(req, channel);
        if (!latest) throw new OrchestratorError("RELEASE_NOT_FOUND", `no release on channel ${channel} yet`);
        void reply.header("etag", latest.etag).header("cache-control", "no-cache");
        if (ifNoneMatchHits(req.headers["if-none-match"], latest.etag)) return reply.code(304).send();
        return reply.type("application/json; charset=utf-8").send(latest.json);
      },
    );
    app.get(
      "/v1/releases",
      { config: { route: "listReleases" }, schema: { tags: ["releases"], querystring: jsonSchemaOf(ListReleasesQuery), response: { 200: jsonSchemaOf(ReleasePage, "output") } } },
      async (req) => listReleases(deps.store, req.query as z.infer<typeof ListReleasesQuery>),
    );
    app.get(
      "/v1/releases/:release_id",
      { config: { route: "getRelease" }, schema: { tags: ["releases"], params: jsonSchemaOf(ReleaseParams), response: { 200: jsonSchemaOf(Release, "output") } } },
      async (req, reply) => {
        const release = await getRelease(deps.store, (req.params as z.infer<typeof ReleaseParams>).release_id);
        return reply.header("etag", `"${release.release_id}"`).send(release);
      },
    );
    app.post(
      "/v1/releases/:release_id/withdraw",
      { config: { route: "withdrawRelease" }, schema: { tags: ["releases"], params: jsonSchemaOf(ReleaseParams), response: { 200: jsonSchemaOf(Release, "output") } } },
      async (req, reply) => {
        const release = await withdrawRelease(deps.store, (req.params as z.infer<typeof ReleaseParams>).release_id, isoTime(deps.clock));
        cache.invalidate(release.channel);
        byId.delete(release.release_id);
        await opts.onWithdrawn?.(release.release_id);
        req.log.warn({ release_id: release.release_id, channel: release.channel, sequence: release.sequence, by: principalName(principalOf(req)) }, "release withdrawn");
        return reply.send(release);
      },
    );
    return Promise.resolve();
  };
}
