import { afterAll, describe, expect, it } from "vitest";
import { compileCedar, PolicyError } from "../policy/index.js";
import type { LoadedPolicy } from "../policy/index.js";
import { explainRequest } from "./explain.js";
import { EXAMPLE_POLICY_FILES, fakeLoadedPolicy } from "../../test/helpers/policies.js";

const engine = compileCedar(EXAMPLE_POLICY_FILES);
afterAll(() => engine.dispose());
const loaded: LoadedPolicy = fakeLoadedPolicy(engine);

describe("explainRequest", () => {
  it("decides a tool call through the interceptor and says why", () => {
    expect(explainRequest(loaded, { kind: "tool.echo", params: { text: "x" } }, "req.json")).toEqual({
      decision: "allow", policy_ref: loaded.ref, policies: ["echo_allow"], reason: "permitted by echo_allow", errors: [],
    });
    expect(explainRequest(loaded, { kind: "tool.shell", params: { command: "id" } }, "req.json")).toMatchObject({ decision: "deny", policies: ["shell_deny"], reason: "forbidden by shell_deny" });
  });

  it("decides a raw decision request with the engine and the same reason wording", () => {
    const raw = (action: string): unknown => ({ principal: { type: "Agent", id: "a" }, action, resource: { type: "Tool", id: "t" }, context: {} });
    expect(explainRequest(loaded, raw("tool:tool.echo"), "req.json")).toMatchObject({ decision: "allow", reason: "permitted by echo_allow" });
    expect(explainRequest(loaded, raw("tool:tool.other"), "req.json")).toEqual({ decision: "deny", policy_ref: loaded.ref, policies: [], reason: "no permit matched", errors: [] });
  });

  it("throws POLICY_REQUEST_INVALID naming the request and the bad field", () => {
    let e: unknown;
    try {
      explainRequest(loaded, { kind: "" }, "req.json");
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(PolicyError);
    expect((e as PolicyError).code).toBe("POLICY_REQUEST_INVALID");
    expect((e as PolicyError).message).toMatch(/^req\.json: /);
  });
});
