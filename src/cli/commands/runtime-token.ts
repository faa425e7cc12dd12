import type { Command } from "commander";
import { createToken, listTokens, revokeToken, stateRootPaths } from "../../node/index.js";
import type { TokenInfo } from "../../node/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";

interface TokenFlags {
  stateRoot: string;
  json?: boolean;
}

const row = (t: TokenInfo): string => `${t.id}  agent ${t.agent_id}  created ${t.created_at}${t.revoked ? `  REVOKED ${t.revoked_at ?? ""}` : ""}`;

/** `runtime token create|list|revoke`: the tool server's per-agent bearer tokens (stored hashed in the state root). */
export function registerRuntimeToken(runtime: Command): void {
  const token = runtime.command("token").description("per-agent bearer tokens for the tool server (/v1/tool, /v1/status, /mcp); stored as SHA-256 hashes in the state root");

  token.command("create")
    .description("create a token for an agent; the token is printed once, on stdout (status on stderr), and only its hash is stored")
    .requiredOption("--state-root <dir>", "the node's persistent state root")
    .requiredOption("--agent <id>", "the agent the token authenticates: its calls are decided for the principal Agent::\"<id>\"")
    .option("--json", "machine-readable output (includes the token)")
    .action(action(async (flags: TokenFlags & { agent: string }) => {
      const t = await createToken(flags.stateRoot, flags.agent);
      emit({ ok: true, ...t }, flags, (x) => x.token);
      if (!flags.json) process.stderr.write(`created ${t.id} for agent ${t.agent_id}; stored hashed in ${stateRootPaths(flags.stateRoot).tokens}; the token above is shown only this once\n`);
    }));

  token.command("list")
    .description("list tokens: id, agent, creation time, revocation (never a token or a hash)")
    .requiredOption("--state-root <dir>", "the node's persistent state root")
    .option("--json", "machine-readable output")
    .action(action(async (flags: TokenFlags) => {
      const tokens = await listTokens(flags.stateRoot);
      emit({ ok: true, tokens }, flags, (x) => (x.tokens.length === 0 ? "no tokens (create one with `autonomy runtime token create`)" : x.tokens.map(row).join("\n")));
    }));

  token.command("revoke <id>")
    .description("revoke a token by id; a running runtime refuses it (403) from its next request, without a restart")
    .requiredOption("--state-root <dir>", "the node's persistent state root")
    .option("--json", "machine-readable output")
    .action(action(async (id: string, flags: TokenFlags) => {
      const t = await revokeToken(flags.stateRoot, id);
      emit({ ok: true, token: t }, flags, (x) => `revoked: ${row(x.token)}`);
    }));
}
