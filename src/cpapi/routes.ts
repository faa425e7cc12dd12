import type { Permission } from "./identity.js";

/**
 * THE list of control-plane routes and the permission each needs. The server
 * registers routes from its areas; a test fails when a registered route is
 * missing here or has no permission, so no route is ever open by accident.
 * `public` routes need no credential (health, metrics, the OpenAPI document,
 * and enrollment, which authenticates with its single-use token itself).
 */
export interface RouteDecl {
  readonly method: "GET" | "POST" | "PUT" | "DELETE" | "PATCH";
  readonly url: string;
  readonly permission: Permission;
  /** Node credentials may call it only for their own node_id (path param or body). */
  readonly selfOnly?: boolean;
}

const CORE_ROUTES = {
  healthz: { method: "GET", url: "/healthz", permission: "public" },
  readyz: { method: "GET", url: "/readyz", permission: "public" },
  metrics: { method: "GET", url: "/metrics", permission: "public" },
  openapi: { method: "GET", url: "/openapi.json", permission: "public" },

  createToken: { method: "POST", url: "/v1/tokens", permission: "token:manage" },
  createEnrollmentToken: { method: "POST", url: "/v1/enrollment-tokens", permission: "node:enroll" },
  enroll: { method: "POST", url: "/v1/nodes/enroll", permission: "public" },

  publishRelease: { method: "POST", url: "/v1/releases", permission: "release:publish" },
  listReleases: { method: "GET", url: "/v1/releases", permission: "release:read" },
  latestRelease: { method: "GET", url: "/v1/releases/latest", permission: "release:read" },
  getRelease: { method: "GET", url: "/v1/releases/:release_id", permission: "release:read" },

  listNodes: { method: "GET", url: "/v1/nodes", permission: "fleet:read" },
  getNode: { method: "GET", url: "/v1/nodes/:node_id", permission: "fleet:read" },
  heartbeat: { method: "POST", url: "/v1/nodes/:node_id/heartbeat", permission: "node:report", selfOnly: true },
  ack: { method: "POST", url: "/v1/nodes/:node_id/ack", permission: "node:report", selfOnly: true },

  ingestEvents: { method: "POST", url: "/v1/events", permission: "events:write", selfOnly: true },
  queryEvents: { method: "GET", url: "/v1/events", permission: "events:read" },
} as const satisfies Record<string, RouteDecl>;

/**
 * The fleet-rollout routes (src/cpapi/rollouts.ts for the bodies), served by
 * the control plane's rollouts area and part of ROUTES (so the route tests
 * cover them like every other route).
 */
export const ROLLOUT_ROUTES = {
  createRollout: { method: "POST", url: "/v1/rollouts", permission: "rollout:manage" },
  listRollouts: { method: "GET", url: "/v1/rollouts", permission: "rollout:read" },
  stuckRollouts: { method: "GET", url: "/v1/rollouts/stuck", permission: "rollout:read" },
  getRollout: { method: "GET", url: "/v1/rollouts/:plan_id", permission: "rollout:read" },
  pauseRollout: { method: "POST", url: "/v1/rollouts/:plan_id/pause", permission: "rollout:manage" },
  resumeRollout: { method: "POST", url: "/v1/rollouts/:plan_id/resume", permission: "rollout:manage" },
  cancelRollout: { method: "POST", url: "/v1/rollouts/:plan_id/cancel", permission: "rollout:manage" },
  rollbackRollout: { method: "POST", url: "/v1/rollouts/:plan_id/rollback", permission: "rollout:manage" },
  recoverRollout: { method: "POST", url: "/v1/rollouts/:plan_id/recover", permission: "rollout:manage" },
  approveStage: { method: "POST", url: "/v1/rollouts/:plan_id/stages/:stage_id/approve", permission: "rollout:manage" },
  stageGates: { method: "GET", url: "/v1/rollouts/:plan_id/stages/:stage_id/gates", permission: "rollout:read" },
} as const satisfies Record<string, RouteDecl>;

export type RolloutRouteName = keyof typeof ROLLOUT_ROUTES;

export const ROUTES = { ...CORE_ROUTES, ...ROLLOUT_ROUTES } as const satisfies Record<string, RouteDecl>;

export type RouteName = keyof typeof ROUTES;
