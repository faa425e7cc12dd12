/**
 * The control-plane API contract: request/response schemas (zod) and the route
 * table with each route's permission, shared by the server (src/orchestrator),
 * the node's release poller (src/runtime) and the fleet simulator, so the
 * three can never disagree on a field. OpenAPI is generated from these.
 */
export { NodeId, ReleaseId, Channel, Timestamp, Sha256Digest, LockFingerprint, Labels, Cursor, Limit } from "./common.js";
export {
  PERMISSIONS,
  ROLES,
  ROLE_PERMISSIONS,
  NODE_PERMISSIONS,
  CreateTokenRequest,
  CreatedToken,
  CreateEnrollmentTokenRequest,
  CreatedEnrollmentToken,
  EnrollRequest,
  Enrolled,
} from "./identity.js";
export type { Permission, Role } from "./identity.js";
export { Envelope, PublishReleaseRequest, Release, ReleasePage, LatestQuery } from "./releases.js";
export { LIFECYCLE_PHASES, LIFECYCLE_EVENT_TYPE, HeartbeatRequest, AckRequest, Node, NodePage } from "./nodes.js";
export type { LifecyclePhase } from "./nodes.js";
export { MAX_EVENTS_PER_BATCH, MAX_EVENT_ATTRIBUTES_BYTES, DECISION_EVENT_TYPE, TOOL_RESULT_EVENT_TYPE, IngestEvent, IngestRequest, IngestResult, StoredEvent, EventPage } from "./events.js";
export { ROUTES, ROLLOUT_ROUTES } from "./routes.js";
export type { RouteDecl, RouteName, RolloutRouteName } from "./routes.js";
export { CpClient } from "./client.js";
export { routeUrl } from "./client-http.js";
export type { CpClientOptions, LatestReleaseResult, ListReleasesQuery, ListNodesQuery, QueryEventsQuery, CallOptions } from "./client.js";
export { CpClientError, CP_CLIENT_ERROR_CODES } from "./client-error.js";
export type { CpClientErrorCode, CpClientErrorInit } from "./client-error.js";
export {
  PlanId,
  StageId,
  MAX_PLAN_NODES,
  MAX_STAGES,
  RolloutTarget,
  BatchSize,
  BEHAVIOUR_METRICS,
  GateSpec,
  StageSpec,
  FailureBudget,
  LATE_JOINER_POLICIES,
  CreateRolloutRequest,
  PLAN_PHASES,
  TERMINAL_PLAN_PHASES,
  NODE_STATES,
  STAGE_PHASES,
  RollbackOutcome,
  RolloutNode,
  GateResult,
  RolloutStage,
  RolloutCounters,
  Rollout,
  RolloutPage,
  StuckQuery,
  StuckNode,
  StuckPlan,
  StuckPlans,
  RECOVER_STRATEGIES,
  RecoverRequest,
  PlanCommandRequest,
  ApproveRequest,
  ApproveResult,
  StageGates,
} from "./rollouts.js";
export type {
  BehaviourMetric,
  GateKind,
  LateJoinerPolicy,
  CreateRolloutInput,
  PlanPhase,
  NodeState,
  StagePhase,
  RecoverStrategy,
} from "./rollouts.js";
