import { readFile } from "node:fs/promises";
import type { z } from "zod";
import { errnoCode, fieldProblems, formatProblems } from "../lib/index.js";
import { NodeError } from "./errors.js";
import type { NodeErrorCode } from "./errors.js";

/**
 * A file the node owns (state.json, trust.json, the token file) as text;
 * `undefined` when it does not exist yet, anything else unreadable fails hard
 * with `code`.
 */
export async function readOptionalText(path: string, code: NodeErrorCode): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (e) {
    if (errnoCode(e) === "ENOENT") return undefined;
    throw unreadable(path, code, e);
  }
}

/** The NodeError for a node file that exists but cannot be read. */
export function unreadable(path: string, code: NodeErrorCode, e: unknown): NodeError {
  return new NodeError(code, `cannot read ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
}

/**
 * Parses a node file's text against its schema (after `prepare`, e.g. a
 * migration); not JSON or not matching fails hard with `code`, naming the fields.
 */
export function parseNodeFile<S extends z.ZodType>(path: string, raw: string, schema: S, code: NodeErrorCode, prepare: (doc: unknown) => unknown = (d) => d): z.infer<S> {
  let doc: unknown;
  try {
    doc = JSON.parse(raw);
  } catch (e) {
    throw new NodeError(code, `${path} is not JSON`, { cause: e });
  }
  const r = schema.safeParse(prepare(doc));
  if (!r.success) {
    const fields = fieldProblems(r.error.issues);
    throw new NodeError(code, `${path} is malformed: ${formatProblems(fields)}`, { details: { fields } });
  }
  return r.data;
}
