import { z } from "zod";
import { decisionReason, PolicyError } from "../policy/index.js";
import type { Decision, LoadedPolicy } from "../policy/index.js";
import { fieldProblems, formatProblems } from "../lib/index.js";
import { Interceptor } from "./interceptor.js";

const entity = z.strictObject({ type: z.string().min(1), id: z.string() });

/** Either a tool call as an agent sends it (`{kind, params, agent_id?, node?}`), or a raw decision request. */
const requestSchema = z.union([
  z.strictObject({ kind: z.string().min(1), params: z.record(z.string(), z.unknown()).default({}), agent_id: z.string().min(1).optional(), node: z.record(z.string(), z.unknown()).optional() }),
  z.strictObject({ principal: entity, action: z.string().min(1), resource: entity, context: z.record(z.string(), z.unknown()).default({}) }),
]);

/** What a policy decides for one request, and why. */
export interface Explanation {
  decision: Decision;
  policy_ref: string;
  policies: string[];
  reason: string;
  errors: string[];
}

/**
 * What `loaded` decides for a request, without running anything or recording
 * an event (`autonomy policy test`). A tool call goes through the same
 * {@link Interceptor} the runtime uses (principal `Agent::"<agent_id>"`,
 * default `agent`); a raw decision request goes to the engine as is.
 * Throws POLICY_REQUEST_INVALID naming each bad field; `source` names the
 * request in that message.
 */
export function explainRequest(loaded: LoadedPolicy, doc: unknown, source: string): Explanation {
  const r = requestSchema.safeParse(doc);
  if (!r.success) throw new PolicyError("POLICY_REQUEST_INVALID", `${source}: ${formatProblems(fieldProblems(r.error.issues))}`);
  const req = r.data;
  if ("kind" in req) {
    const gate = new Interceptor({ policy: () => loaded, principal: { type: "Agent", id: req.agent_id ?? "agent" }, node: req.node ?? {} });
    const d = gate.decide({ kind: req.kind, params: req.params });
    return { decision: d.decision, policy_ref: d.policy_ref, policies: d.policies, reason: d.reason, errors: d.errors };
  }
  const d = loaded.engine.evaluate(req);
  return { ...d, policy_ref: loaded.ref, reason: decisionReason(d) };
}
