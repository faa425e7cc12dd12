import type { EngineDecision } from "./types.js";

/**
 * The one human-readable reason for an engine decision, shown in tool-call
 * answers, decision events and `autonomy policy test`: an evaluation error
 * wins (fail closed), then the policies that permitted or forbade, then the
 * default deny.
 *
 * ### Examples
 * ```ts
 * decisionReason({ decision: "deny", policies: [], errors: [] }); // "no permit matched"
 * decisionReason({ decision: "allow", policies: ["echo"], errors: [] }); // "permitted by echo"
 * ```
 */
export function decisionReason(d: Readonly<EngineDecision>): string {
  if (d.errors.length > 0) return `evaluation error: ${d.errors.join("; ")}`;
  if (d.decision === "allow") return d.policies.length > 0 ? `permitted by ${d.policies.join(", ")}` : "permitted";
  if (d.policies.length > 0) return `forbidden by ${d.policies.join(", ")}`;
  return "no permit matched";
}
