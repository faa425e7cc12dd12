import type { FastifyPluginAsync } from "fastify";
import type { Role } from "../cpapi/index.js";
import type { Clock } from "../lib/index.js";
import type { Logger } from "../observability/index.js";
import type { Store } from "./db/connect.js";

/** What every API area gets from `buildApp`. */
export interface AreaDeps {
  store: Store;
  clock: Clock;
  log: Logger;
}

/** An API area: registered by `buildApp`; every route sets `config: { route: "<RouteName>" }`. */
export type Area = (deps: AreaDeps) => FastifyPluginAsync;

/** Who is calling, as the auth hook established it (`request.principal`). */
export type Principal = { kind: "operator"; token_id: string; name: string; role: Role } | { kind: "node"; node_id: string };
