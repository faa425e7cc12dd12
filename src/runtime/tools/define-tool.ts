import { z } from "zod";
import { fieldProblems, formatProblems } from "../../lib/index.js";
import { RuntimeError } from "../errors.js";
import type { Tool, ToolCallContext, ToolOutput } from "../types.js";

/** What a built-in tool declares: its params as a zod object, and what it does with them. */
export interface ToolSpec<S extends z.ZodObject> {
  name: string;
  description: string;
  params: S;
  run(params: z.output<S>, signal?: AbortSignal, context?: ToolCallContext): Promise<unknown>;
  /** See {@link Tool.unfaithful}; given the raw params (not yet validated). */
  unfaithful?(params: Record<string, unknown>): { path: string; problem: string } | undefined;
}

/**
 * Builds a {@link Tool} from a zod params schema: `inputSchema` is the schema's
 * JSON Schema (computed once, here), and `run` validates params first, throwing
 * RuntimeError(TOOL_PARAMS_INVALID) that names every bad field.
 *
 * ### Examples
 * ```ts
 * const upper = defineTool({
 *   name: "tool.upper",
 *   description: "Upper-cases text",
 *   params: z.strictObject({ text: z.string() }),
 *   run: async ({ text }) => ({ text: text.toUpperCase() }),
 * });
 * ```
 */
export function defineTool<S extends z.ZodObject>(spec: ToolSpec<S>): Tool {
  const { name, description, params: schema } = spec;
  const inputSchema = Object.freeze(z.toJSONSchema(schema, { io: "input" }) as Record<string, unknown>);
  return Object.freeze({
    name,
    description,
    inputSchema,
    async run(params: Record<string, unknown>, signal?: AbortSignal, context?: ToolCallContext): Promise<ToolOutput> {
      return { output: await spec.run(parseParams(name, schema, params), signal, context) };
    },
    ...(spec.unfaithful ? { unfaithful: (params: Record<string, unknown>) => spec.unfaithful?.(params) } : {}),
  });
}

/** Validates `params` against `schema`; throws TOOL_PARAMS_INVALID listing each bad field. */
export function parseParams<S extends z.ZodType>(tool: string, schema: S, params: unknown): z.output<S> {
  const parsed = schema.safeParse(params);
  if (parsed.success) return parsed.data;
  const problems = fieldProblems(parsed.error.issues);
  const list = formatProblems(problems);
  throw new RuntimeError("TOOL_PARAMS_INVALID", `${tool}: invalid params: ${list}`, { details: { tool, problems } });
}
