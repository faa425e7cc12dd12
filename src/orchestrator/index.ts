/**
 * The control plane (`autonomy serve`): Fastify over a Kysely store (SQLite or
 * PostgreSQL), identity (operator tokens, node enrollment and credentials),
 * releases, and the areas of nodes, events and rollouts.
 */
export { buildApp, BODY_LIMIT, LATEST_CACHE_MS } from "./app.js";
export type { BuildAppOptions, RegisteredRoute } from "./app.js";
export type { AreaDeps, Area, Principal } from "./area.js";
export { openStore, isPostgresLocation } from "./db/connect.js";
export type { Store, Dialect, OpenStoreOptions } from "./db/connect.js";
export type { Migration } from "./db/migration.js";
export { MIGRATIONS } from "./db/migrations.js";
export { migrateStore } from "./db/migrate.js";
export type { MigrationReport } from "./db/migrate.js";
export type { Database } from "./db/schema.js";
export { withExclusiveTransaction } from "./db/write-lock.js";
export { authHook, assertSelf, principalOf, routeDecl } from "./auth/index.js";
export { OrchestratorError, RequestInvalid, ORCHESTRATOR_ERROR_CODES, orchestratorStatusOf } from "./errors.js";
export type { OrchestratorErrorCode } from "./errors.js";
export { createMetrics } from "./metrics.js";
export type { CpMetrics } from "./metrics.js";
export { jsonSchemaOf } from "./validation.js";
export { startPgCluster, findPgBinaries, pgClusterProblem, PgClusterError, PG_CLUSTER_ERROR_CODES, PG_PROGRAMS, PG_BINDIR_VAR, DEBIAN_PG_ROOT } from "./db/pg-cluster.js";
export type { PgCluster, PgClusterOptions, PgBinaries, PgClusterErrorCode } from "./db/pg-cluster.js";
export { storeFailureOf, BUSY_RETRY_AFTER_SECONDS } from "./db/store-errors.js";
export type { StoreFailure } from "./db/store-errors.js";
export type { NodeTables, NodesTable, NodeAcksTable } from "./nodes/tables.js";
export type { EventTables, EventsTable } from "./events/tables.js";
export { bootstrapOwnerToken, createOperatorToken, revokeOperatorToken, createEnrollmentToken, enrollNode } from "./identity/store.js";
export type { IssuedToken, IssuedEnrollmentToken } from "./identity/store.js";
export { isUniqueViolation } from "./db/errors.js";
export { releaseIdOf } from "./releases/statement.js";
export { ListReleasesQuery } from "./releases/routes.js";
