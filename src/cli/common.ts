import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { CpClient } from "../cpapi/index.js";
import { UsageError } from "../lib/index.js";
import { openRepository, parseReference, referenceTarget } from "../oci/index.js";
import type { OciRepository, Reference, RepositoryOptions } from "../oci/index.js";

export interface RegistryFlags {
  plainHttp?: boolean;
  json?: boolean;
}

/** Adds the flags every registry-touching command shares. */
export function registryFlags(cmd: Command): Command {
  return cmd
    .option("--plain-http", "talk HTTP instead of HTTPS to the registry (loopback test registries)")
    .option("--json", "machine-readable output");
}

/** Registry options from flags and the environment (credentials never come from flags: they would show in `ps`). */
export function repositoryOptions(flags: RegistryFlags): RepositoryOptions {
  const opts: RepositoryOptions = {};
  if (flags.plainHttp) opts.plainHttp = true;
  const user = process.env.AUTONOMY_REGISTRY_USERNAME;
  const pass = process.env.AUTONOMY_REGISTRY_PASSWORD;
  if (user !== undefined && pass !== undefined) {
    opts.username = user;
    opts.password = pass;
  }
  return opts;
}

export interface OpenedRef {
  ref: Reference;
  repo: OciRepository;
  target: string;
}

export function openRef(input: string, flags: RegistryFlags): OpenedRef {
  const ref = parseReference(input);
  return { ref, repo: openRepository(ref, repositoryOptions(flags)), target: referenceTarget(ref) };
}

/** An absolute http:// or https:// URL option (collector, control plane). */
export function parseHttpUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new InvalidArgumentError("must be an absolute http(s) URL");
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new InvalidArgumentError("must be an http:// or https:// URL");
  return v;
}

/** Flags of the commands that talk to a control plane as an operator. */
export interface ServerFlags {
  server?: string;
  token?: string;
  json?: boolean;
}

/**
 * The control plane and operator token: flags first, then AUTONOMY_SERVER /
 * AUTONOMY_TOKEN. `tokenWhy` ends the hint of a missing token: which token the
 * command needs ("an operator token with fleet:read").
 */
export function serverAndToken(flags: ServerFlags, tokenWhy: string): { server: string; token: string } {
  const server = flags.server ?? process.env.AUTONOMY_SERVER;
  if (server === undefined || server === "") throw new UsageError("no control plane given", "pass --server URL or set AUTONOMY_SERVER");
  const token = flags.token ?? process.env.AUTONOMY_TOKEN;
  if (token === undefined || token === "") throw new UsageError("no operator token given", `pass --token T or set AUTONOMY_TOKEN (${tokenWhy})`);
  return { server, token };
}

/** A typed control-plane client from {@link serverAndToken}. */
export function operatorClient(flags: ServerFlags, tokenWhy: string): CpClient {
  const { server, token } = serverAndToken(flags, tokenWhy);
  return new CpClient({ baseUrl: server, token });
}

/** Adds --server and --token (the token flag's help names what it needs) and --json. */
export function withServerFlags(cmd: Command, opts: { token?: string; json?: string } = {}): Command {
  return cmd
    .option("--server <url>", "the control plane (or AUTONOMY_SERVER)", parseHttpUrl)
    .option("--token <token>", `${opts.token ?? "operator token"} (or AUTONOMY_TOKEN; a flag shows in \`ps\`)`)
    .option("--json", opts.json ?? "machine-readable output");
}
