import { describe, expect, it } from "vitest";
import { RecoverRequest, ROLLOUT_ROUTES, ROUTES, StuckQuery } from "./index.js";

describe("rollout routes and bodies", () => {
  it("every rollout route declares rollout:read (GET) or rollout:manage (POST), is part of ROUTES, and no two routes share a method and URL", () => {
    for (const [name, r] of Object.entries(ROLLOUT_ROUTES)) {
      expect(r.permission, name).toBe(r.method === "GET" ? "rollout:read" : "rollout:manage");
      expect((ROUTES as Record<string, unknown>)[name], name).toBe(r);
    }
    const keys = Object.values(ROUTES).map((r) => `${r.method} ${r.url}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it("recover takes the original's three strategies and nothing else", () => {
    for (const strategy of ["retry", "rollback", "skip_failed"]) expect(RecoverRequest.safeParse({ strategy }).success).toBe(true);
    expect(RecoverRequest.safeParse({ strategy: "force" }).success).toBe(false);
    expect(RecoverRequest.safeParse({ strategy: "retry", extra: 1 }).success).toBe(false);
  });

  it("the stuck query defaults to the original's 3600 s", () => {
    expect(StuckQuery.parse({})).toEqual({ threshold_seconds: 3600 });
    expect(StuckQuery.parse({ threshold_seconds: "60" })).toEqual({ threshold_seconds: 60 });
    expect(StuckQuery.safeParse({ threshold_seconds: "0" }).success).toBe(false);
  });
});
