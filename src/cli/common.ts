import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
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
