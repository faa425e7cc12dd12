import type { FastifyReply, FastifyRequest } from "fastify";
import { ROUTES } from "../../cpapi/index.js";
import type { RouteDecl, RouteName } from "../../cpapi/index.js";
import type { Clock } from "../../lib/index.js";
import type { Principal } from "../area.js";
import type { Store } from "../db/connect.js";
import { OrchestratorError } from "../errors.js";
import { checkExpiry, lookupToken, permissionsOf, principalName } from "./principal.js";
import { PrincipalCache } from "./principal-cache.js";
import { bearerOf, hashToken } from "./secrets.js";

declare module "fastify" {
  interface FastifyContextConfig {
    /** The route's name in cpapi ROUTES: its permission is looked up there (a route without one is refused). */
    route?: RouteName;
  }
  interface FastifyRequest {
    /** Set by the auth hook on every non-public route. */
    principal?: Principal;
  }
}

const DECLS: Readonly<Record<string, RouteDecl>> = ROUTES;

/** The declaration of a route name, or undefined when ROUTES does not have it. */
export function routeDecl(name: string | undefined): RouteDecl | undefined {
  return name !== undefined && Object.hasOwn(DECLS, name) ? DECLS[name] : undefined;
}

/**
 * The one authentication and permission check (an `onRequest` hook on the
 * whole app, before the body is even read): the route's permission comes from
 * cpapi ROUTES through `config.route`. `public` routes pass; any other needs a
 * bearer token (none → 401 AUTH_REQUIRED, unknown/expired/revoked → 401) whose
 * principal holds the permission (else 403 PERMISSION_DENIED). On `selfOnly`
 * routes a node credential must name itself in `:node_id` (403
 * NODE_IDENTITY_MISMATCH). A route with no declaration is refused, never open.
 * With `cacheMs` > 0 a token's lookup is reused that long (PrincipalCache):
 * a revocation in the store takes effect within it; expiry is checked on every use.
 */
export function authHook(store: Store, clock: Clock, opts: { cacheMs?: number; cache?: PrincipalCache } = {}) {
  const cache = opts.cache ?? new PrincipalCache(clock, opts.cacheMs ?? 0);
  const principalFor = async (token: string): Promise<Principal> => {
    const hash = hashToken(token);
    let a = cache.get(hash);
    if (!a) {
      a = await lookupToken(store, token, hash);
      cache.set(hash, a.principal, a.expiresAt);
    }
    checkExpiry(a, clock);
    return a.principal;
  };
  return async (req: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (req.is404) return; // the not-found handler answers; nothing to protect
    const name = req.routeOptions.config.route;
    const decl = routeDecl(name);
    if (!decl || decl.method !== req.method.replace("HEAD", "GET") || decl.url !== req.routeOptions.url) {
      throw new OrchestratorError("PERMISSION_DENIED", `route ${req.method} ${req.routeOptions.url ?? "?"} declares no permission in cpapi ROUTES; it is refused until it does`);
    }
    if (decl.permission === "public") return;
    const token = bearerOf(req.headers.authorization);
    if (token === undefined) {
      void reply.header("www-authenticate", 'Bearer realm="autonomy-cp"');
      throw new OrchestratorError("AUTH_REQUIRED", `${req.method} ${decl.url} needs a bearer token (Authorization: Bearer <token>)`);
    }
    let principal: Principal;
    try {
      principal = await principalFor(token);
    } catch (e) {
      void reply.header("www-authenticate", 'Bearer realm="autonomy-cp", error="invalid_token"');
      throw e;
    }
    if (!permissionsOf(principal).includes(decl.permission)) {
      throw new OrchestratorError("PERMISSION_DENIED", `${principalName(principal)} lacks ${decl.permission}, which ${req.method} ${decl.url} needs`);
    }
    if (decl.selfOnly === true) {
      const params = req.params as Record<string, unknown> | undefined;
      const nodeId = params?.["node_id"];
      if (typeof nodeId === "string") assertPrincipalIs(principal, nodeId);
    }
    req.principal = principal;
  };
}

function assertPrincipalIs(p: Principal, nodeId: string): void {
  if (p.kind === "node" && p.node_id !== nodeId) {
    throw new OrchestratorError("NODE_IDENTITY_MISMATCH", `node ${p.node_id} may not report as node ${nodeId}`);
  }
}

/**
 * For handlers that take node ids from the body (events): a node credential
 * may name only itself (403 NODE_IDENTITY_MISMATCH); operators may name any.
 */
export function assertSelf(req: FastifyRequest, nodeId: string): void {
  assertPrincipalIs(principalOf(req), nodeId);
}

/** The request's principal; a handler of a non-public route always has one (the hook ran). */
export function principalOf(req: FastifyRequest): Principal {
  if (!req.principal) throw new OrchestratorError("AUTH_REQUIRED", "the request was not authenticated");
  return req.principal;
}
