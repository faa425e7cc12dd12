import type { FastifyInstance } from "fastify";
import { parseFaithfulJson } from "../lib/index.js";
import { RuntimeError } from "./errors.js";

/**
 * Deepest nesting of a request body. Above what any tool call needs (the
 * policy context itself stops at 32 levels), low enough that a depth bomb is
 * refused while it is read.
 */
export const BODY_MAX_DEPTH = 64;

/**
 * Replaces the server's `application/json` body parser by one that first
 * reads the body with {@link parseFaithfulJson}: a key given twice in one
 * object (which `JSON.parse` would resolve silently, keeping the last) or a
 * depth bomb is refused with `INPUT_NOT_REPRESENTABLE` (HTTP 400, the path
 * named) before any route sees it. Anything else goes on to Fastify's own
 * parser unchanged, so malformed JSON and `__proto__` keys are answered as
 * before.
 *
 * ### Examples
 * ```ts
 * const app = Fastify();
 * faithfulJsonBodies(app);
 * ```
 */
export function faithfulJsonBodies(app: FastifyInstance): void {
  const standard = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (req, body, done) => {
    const raw = typeof body === "string" ? body : body.toString("utf8");
    // Fastify's parser skips a leading UTF-8 BOM; read past it here too, or a BOM would turn the
    // duplicate-key check into a "syntax error" handed on to a parser that keeps the last key.
    const text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
    const r = parseFaithfulJson(text, { maxDepth: BODY_MAX_DEPTH });
    if (!r.ok && r.kind !== "syntax") {
      done(new RuntimeError("INPUT_NOT_REPRESENTABLE", `request body not representable for the policy: ${r.path}: ${r.message}`, { details: { path: r.path } }), undefined);
      return;
    }
    void standard(req, text, done);
  });
}
