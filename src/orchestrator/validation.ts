import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { fieldProblems, formatProblems, parseFaithfulJson } from "../lib/index.js";
import { RequestInvalid } from "./errors.js";

/**
 * Request validation with the cpapi zod schemas, and JSON Schemas for the
 * OpenAPI document generated from the same schemas: a route's `schema.body`
 * / `schema.querystring` is `jsonSchemaOf(Zod)`, and the validator compiler
 * finds the zod schema behind it. Fastify's ajv is never used (its default
 * removeAdditional drops unknown fields silently; zod's strict objects name
 * them: 400 REQUEST_INVALID `field: unknown field`).
 */
const zodOf = new WeakMap<object, z.ZodType>();

type JsonSchema = Record<string, unknown>;

/** The JSON Schema of a zod schema (input side: what a client sends), remembered for the validator. */
export function jsonSchemaOf(schema: z.ZodType, io: "input" | "output" = "input"): JsonSchema {
  const { $schema: _ignored, ...json } = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as JsonSchema;
  if (io === "input") zodOf.set(json, schema);
  return json;
}

const PART_NAMES: Readonly<Record<string, string>> = { body: "body", querystring: "query", params: "path", headers: "header" };

/** Installs the zod validator compiler, a serializer that does not drop fields, and strict JSON bodies. */
export function useZodValidation(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart, method, url }) => {
    const zod = zodOf.get(schema);
    if (!zod) throw new Error(`route ${method} ${url}: its ${httpPart ?? "?"} schema was not made by jsonSchemaOf (a wiring defect)`);
    const part = PART_NAMES[httpPart ?? ""] ?? "request";
    return (data: unknown) => {
      const r = zod.safeParse(data ?? (httpPart === "querystring" ? {} : data));
      if (r.success) return { value: r.data };
      return { error: new RequestInvalid(`invalid ${part}: ${formatProblems(fieldProblems(r.error.issues))}`) };
    };
  });
  // Response schemas document the API; bodies are built by our handlers, so plain JSON.stringify (no field dropping).
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  strictJsonBodies(app);
}

/** Decodes request bodies, refusing invalid UTF-8 (and keeping a BOM, which the parser strips itself). */
const STRICT_UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Deepest nesting of a request body: far above any contract shape, low enough to refuse a depth bomb while reading. */
const BODY_MAX_DEPTH = 32;

/**
 * JSON bodies only (a text body is a 415), in valid UTF-8 only, and a key given twice in one object
 * is refused (JSON.parse would keep the last one silently).
 */
function strictJsonBodies(app: FastifyInstance): void {
  app.removeContentTypeParser("text/plain");
  const standard = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (req, body, done) => {
    let raw: string;
    try {
      // Fatal: invalid UTF-8 is a 400, never decoded to U+FFFD (two distinct byte strings would become one id).
      raw = typeof body === "string" ? body : STRICT_UTF8.decode(body);
    } catch {
      done(new RequestInvalid("invalid body: not valid UTF-8 (send the JSON body encoded as UTF-8)"), undefined);
      return;
    }
    const text = raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw;
    const r = parseFaithfulJson(text, { maxDepth: BODY_MAX_DEPTH });
    if (!r.ok && r.kind !== "syntax") {
      done(new RequestInvalid(`invalid body: ${r.path}: ${r.message}`), undefined);
      return;
    }
    void standard(req, text, done);
  });
}
