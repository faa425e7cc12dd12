import type { Command } from "commander";
import { Option } from "commander";
import { compileBundle, PolicyError } from "../../policy/index.js";
import { explainRequest } from "../../runtime/index.js";
import { AutonomyError, readInputFile } from "../../lib/index.js";
import { action, outcome } from "../run.js";
import { emit } from "../output.js";

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
    const out = explainRequest(loaded, doc, requestPath);
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
