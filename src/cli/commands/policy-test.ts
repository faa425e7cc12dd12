import type { Command } from "commander";
import { Option } from "commander";
import { z } from "zod";
import { compileBundle, decisionReason, PolicyError } from "../../policy/index.js";
import { Interceptor } from "../../runtime/index.js";
import { AutonomyError, fieldProblems, formatProblems } from "../../lib/index.js";
import { action, outcome } from "../run.js";
import { emit } from "../output.js";
import { readInputFile } from "../common.js";

const entity = z.strictObject({ type: z.string().min(1), id: z.string() });
/** Either a tool call as an agent sends it, or a raw decision request. */
const requestSchema = z.union([
  z.strictObject({ kind: z.string().min(1), params: z.record(z.string(), z.unknown()).default({}), agent_id: z.string().min(1).optional(), node: z.record(z.string(), z.unknown()).optional() }),
  z.strictObject({ principal: entity, action: z.string().min(1), resource: entity, context: z.record(z.string(), z.unknown()).default({}) }),
]);

interface TestResult {
  ok: boolean;
  decision: "allow" | "deny";
  policy_ref: string;
  policies: string[];
  reason: string;
  errors: string[];
}

/** `policy test`: what would this bundle decide for this request? Nothing runs. */
async function policyTest(bundlePath: string, requestPath: string, expect?: "allow" | "deny"): Promise<TestResult> {
  const loaded = await compileBundle(await readInputFile(bundlePath, "policy bundle"));
  try {
    let doc: unknown;
    try {
      doc = JSON.parse((await readInputFile(requestPath, "request")).toString("utf8"));
    } catch (e) {
      if (e instanceof AutonomyError) throw e;
      throw new PolicyError("POLICY_REQUEST_INVALID", `${requestPath} is not JSON`);
    }
    const r = requestSchema.safeParse(doc);
    if (!r.success) {
      throw new PolicyError("POLICY_REQUEST_INVALID", `${requestPath}: ${formatProblems(fieldProblems(r.error.issues))}`);
    }
    const req = r.data;
    let out: Omit<TestResult, "ok">;
    if ("kind" in req) {
      const gate = new Interceptor({ policy: () => loaded, principal: { type: "Agent", id: req.agent_id ?? "agent" }, node: req.node ?? {} });
      const d = gate.decide({ kind: req.kind, params: req.params });
      out = { decision: d.decision, policy_ref: d.policy_ref, policies: d.policies, reason: d.reason, errors: d.errors };
    } else {
      const d = loaded.engine.evaluate(req);
      out = { ...d, policy_ref: loaded.ref, reason: decisionReason(d) };
    }
    return { ok: expect === undefined || expect === out.decision, ...out };
  } finally {
    loaded.engine.dispose();
  }
}

export function registerPolicyTest(policy: Command): void {
  policy.command("test <bundle>")
    .description("print the decision a bundle makes for a request (a tool call {kind, params} or {principal, action, resource, context}); nothing runs")
    .requiredOption("--request <file>", "the request as JSON")
    .addOption(new Option("--expect <decision>", "exit 1 unless the decision is this (for policy CI)").choices(["allow", "deny"]))
    .option("--json", "machine-readable output")
    .action(action(async (bundle: string, flags: { request: string; expect?: "allow" | "deny"; json?: boolean }) => {
      const r = await policyTest(bundle, flags.request, flags.expect);
      emit(r, flags, (x) => `${x.decision.toUpperCase()}: ${x.reason}\npolicy_ref: ${x.policy_ref}${x.ok ? "" : `\nexpected ${flags.expect ?? ""}`}`);
      return outcome(r.ok);
    }));
}
