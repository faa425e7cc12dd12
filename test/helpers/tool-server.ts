/**
 * Shared pieces of the runtime tool-server tests: a real Cedar policy built
 * from policy text, an interceptor over it, real bearer tokens in a state
 * root, and a server listening on loopback.
 */
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { TokenVerifier, createToken } from "../../src/node/index.js";
import type { FastifyInstance } from "fastify";
import { compileCedar } from "../../src/policy/index.js";
import type { EngineCompiler, LoadedPolicy, PolicyFile } from "../../src/policy/index.js";
import { Interceptor } from "../../src/runtime/interceptor.js";
import type { DecisionSink, PolicySource } from "../../src/runtime/types.js";
import { EXAMPLE_POLICY_FILES } from "./policies.js";

/** The example policies shipped with the product: tool.echo permitted, tool.shell forbidden. */
export const EXAMPLE_POLICIES: PolicyFile[] = EXAMPLE_POLICY_FILES;

/** A loaded policy (as the manager would hold it) compiled from Cedar text by the real Cedar engine. */
export function policyOf(files: readonly PolicyFile[], name = "test-policy", compile: EngineCompiler = compileCedar): LoadedPolicy {
  const engine = compile(files);
  const digest = `sha256:${"0".repeat(64)}`;
  return {
    bundle: {
      manifest: { name, policy_bundle_version: "1.0.0", required_runtime_version: "", bundle_hash: digest, created_at: "2025-01-01T00:00:00Z", engine: "cedar", files: {} },
      files: [...files],
      digest,
      size: 0,
    },
    engine,
    ref: `${name}@1.0.0 (${digest})`,
  };
}

/** A policy source the test can change (undefined: nothing loaded). */
export function mutablePolicy(initial?: LoadedPolicy): PolicySource & { set(p: LoadedPolicy | undefined): void } {
  let current = initial;
  return Object.assign(() => current, { set: (p: LoadedPolicy | undefined) => void (current = p) });
}

/** The runtime's interceptor over `policy`, as the agent `Agent::"test-agent"` on node `test-node`. */
export function interceptorFor(policy: PolicySource, sink?: DecisionSink): Interceptor {
  return new Interceptor({ policy, principal: { type: "Agent", id: "test-agent" }, node: { id: "test-node" }, ...(sink ? { sink } : {}) });
}

/** Listens on 127.0.0.1:0 and returns the base URL. */
export async function listen(app: FastifyInstance): Promise<string> {
  await app.listen({ host: "127.0.0.1", port: 0 });
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
}

/** Real tokens (created as `autonomy runtime token create` does) and the verifier a tool server checks them with. */
export interface TestAuth {
  stateRoot: string;
  auth: TokenVerifier;
  /** The token of each agent named at creation. */
  tokens: Record<string, string>;
  /** `{authorization: "Bearer …"}` for `agent` (default: the first agent). */
  headers(agent?: string): Record<string, string>;
}

/** Creates a token for each agent (default `test-agent`, the principal of {@link interceptorFor}) in a state root under `dir`. */
export async function testAuth(dir: string, agents: readonly string[] = ["test-agent"]): Promise<TestAuth> {
  const stateRoot = join(dir, `auth-${Math.random().toString(36).slice(2)}`);
  const tokens: Record<string, string> = {};
  for (const a of agents) tokens[a] = (await createToken(stateRoot, a)).token;
  const first = agents[0] ?? "test-agent";
  return { stateRoot, auth: new TokenVerifier(stateRoot), tokens, headers: (agent = first) => ({ authorization: `Bearer ${tokens[agent] ?? ""}` }) };
}

/** Creates a token for `agent` in a node's state root (before `startRuntime`) and returns its `{authorization}` header. */
export async function bearerFor(stateRoot: string, agent: string): Promise<Record<string, string>> {
  return { authorization: `Bearer ${(await createToken(stateRoot, agent)).token}` };
}
