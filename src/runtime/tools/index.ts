import type { Tool } from "../types.js";
import { echoTool } from "./echo.js";
import { httpGetTool } from "./http-get.js";
import type { HttpGetOptions } from "./http-get.js";
import { shellTool } from "./shell.js";
import type { ShellOptions } from "./shell.js";

/** Options of {@link builtinTools}. */
export interface BuiltinToolsOptions {
  /** `tool.http_get`'s allow-list (`runtime start --allowed-domains`). Empty: every target refused. */
  allowedDomains?: readonly string[];
  httpGet?: Omit<HttpGetOptions, "allowedDomains">;
  shell?: ShellOptions;
}

/** The original's default `--allowed-domains`. */
export const DEFAULT_ALLOWED_DOMAINS: readonly string[] = Object.freeze(["api.anthropic.com", "ifconfig.me"]);

/**
 * The runtime's built-in tools by name: `tool.echo`, `tool.http_get`, `tool.shell`.
 * All are offered; the policy decides, at call time, which may run.
 *
 * ### Examples
 * ```ts
 * const tools = builtinTools({ allowedDomains: ["api.example.com"] });
 * tools.get("tool.echo"); // Tool
 * ```
 */
export function builtinTools(opts: BuiltinToolsOptions = {}): Map<string, Tool> {
  const list = [echoTool(), httpGetTool({ ...opts.httpGet, allowedDomains: opts.allowedDomains ?? [] }), shellTool(opts.shell)];
  return new Map(list.map((t) => [t.name, t]));
}

export { echoTool, httpGetTool, shellTool };
export { HostAllowList } from "./http-get.js";
export { defineTool, parseParams } from "./define-tool.js";
export type { HttpGetOptions, HttpGetOutput } from "./http-get.js";
export type { ShellOptions, ShellOutput } from "./shell.js";
export type { ToolSpec } from "./define-tool.js";
export { toolRegistry, asToolRegistry } from "./registry.js";
export type { ToolRegistry, ToolSource } from "./registry.js";
