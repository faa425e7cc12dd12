import { RuntimeError } from "../errors.js";
import type { Tool } from "../types.js";

/** Where the servers find tools: a name lookup and the full list (for tools/list and status). */
export interface ToolRegistry {
  get(name: string): Tool | undefined;
  list(): readonly Tool[];
}

/** A registry, or a plain map of tools by name (read live, so later additions show up). */
export type ToolSource = ReadonlyMap<string, Tool> | ToolRegistry;

function isRegistry(s: unknown): s is ToolRegistry {
  return typeof s === "object" && s !== null && typeof (s as Partial<ToolRegistry>).list === "function" && typeof (s as Partial<ToolRegistry>).get === "function";
}

/** Views any {@link ToolSource} as a {@link ToolRegistry} (a map is read live, not copied). */
export function asToolRegistry(source: ToolSource): ToolRegistry {
  if (isRegistry(source)) return source;
  return { get: (name) => source.get(name), list: () => [...source.values()] };
}

/**
 * Merges tool sources (built-ins, upstream proxies) into one registry; a name
 * offered twice is a configuration error, never a silent shadowing.
 *
 * ### Examples
 * ```ts
 * const tools = toolRegistry(builtinTools(), upstreams.tools);
 * ```
 */
export function toolRegistry(...sources: ReadonlyArray<ToolSource | Iterable<Tool>>): ToolRegistry {
  const byName = new Map<string, Tool>();
  for (const source of sources) {
    const list: Iterable<Tool> = isRegistry(source) ? source.list() : source instanceof Map ? (source as ReadonlyMap<string, Tool>).values() : (source as Iterable<Tool>);
    for (const tool of list) {
      if (byName.has(tool.name)) throw new RuntimeError("RUNTIME_CONFIG_INVALID", `two tools are named ${tool.name}`, { hint: "rename the upstream server so its tools get another prefix" });
      byName.set(tool.name, tool);
    }
  }
  const all = Object.freeze([...byName.values()]);
  return { get: (name) => byName.get(name), list: () => all };
}

