import { z } from "zod";
import type { Tool } from "../types.js";
import { defineTool } from "./define-tool.js";

const EchoParams = z.strictObject({
  text: z.string().describe("Text to return unchanged"),
});

/**
 * `tool.echo` {text} → {text}: returns its input; the harmless tool the demo policy allows.
 *
 * ### Examples
 * ```ts
 * const { output } = await echoTool().run({ text: "hi" }); // { text: "hi" }
 * ```
 */
export function echoTool(): Tool {
  return defineTool({
    name: "tool.echo",
    description: "Returns the given text unchanged.",
    params: EchoParams,
    run: ({ text }) => Promise.resolve({ text }),
  });
}
