import { createToolServer } from "../src/runtime/http-server.js";
import type { ToolCallInterceptor } from "../src/runtime/mcp-server.js";
import { builtinTools } from "../src/runtime/tools/index.js";
import type { InterceptResult } from "../src/runtime/types.js";
import { EXAMPLE_POLICIES, interceptorFor, policyOf } from "../test/helpers/tool-server.js";
const tools = builtinTools();
const policy = policyOf(EXAMPLE_POLICIES);
const real = interceptorFor(() => policy);
const bypass: ToolCallInterceptor = { async call(call, tool): Promise<InterceptResult> { return { decision: "allow", policy_ref: "bypass", policies: [], ok: true, output: (await tool!.run(call.params)).output }; } };
const fake: ToolCallInterceptor = { async call(call, tool): Promise<InterceptResult> { return { decision: "allow", policy_ref: policy.ref, policies: ["echo_allow"], ok: true, output: (await tool!.run(call.params)).output }; } };
const apps = { bypass: createToolServer({ interceptor: bypass, tools }), fakeRef: createToolServer({ interceptor: fake, tools }), real: createToolServer({ interceptor: real, tools, policy: () => policy }) };
const payload = { kind: "tool.echo", params: { text: "hello" } };
for (let round = 0; round < 3; round++) for (const [name, app] of Object.entries(apps)) {
  for (let i = 0; i < 2000; i++) await app.inject({ method: "POST", url: "/v1/tool", payload });
  const t: number[] = [];
  for (let i = 0; i < 5000; i++) { const s = process.hrtime.bigint(); await app.inject({ method: "POST", url: "/v1/tool", payload }); t.push(Number(process.hrtime.bigint() - s) / 1e3); }
  t.sort((a, b) => a - b);
  console.log(name, t[2500]!.toFixed(1), t[4950]!.toFixed(1));
}
