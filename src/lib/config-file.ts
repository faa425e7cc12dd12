import { readFile } from "node:fs/promises";
import { parse as parseToml } from "smol-toml";
import type { z } from "zod";
import { errnoCode } from "./errors.js";
import { jsonErrorPosition } from "./json-error-position.js";
import type { FieldProblem } from "./field-problems.js";

/** Field names come from untrusted input; keep messages bounded. */
const MAX_KEY_CHARS = 64;
const BARE_KEY_RE = /^[A-Za-z0-9_-]+$/;

/** How a domain turns a config problem into its own typed error (e.g. RUNTIME_CONFIG_INVALID). */
export type ConfigErrorFactory = (message: string, opts: { cause?: unknown; fields?: FieldProblem[] }) => Error;

/** Options of {@link loadConfigFile}. */
export interface ConfigFileOptions {
  /** What the file is, for messages: "runtime config". */
  what: string;
  /** Builds the domain's error; every message already names the file and each bad key. */
  fail: ConfigErrorFactory;
}

/**
 * The one config loader: reads a TOML file (or JSON, by its `.json` suffix),
 * validates it with a zod schema, and fails with one message naming the file
 * and every bad key as TOML spells it (`[telemetry] segment_bytes: expected a
 * number ≥ 4096`). Defaults are not applied here: the domain that owns the
 * config merges them (so the CLI never does).
 *
 * ### Examples
 * ```ts
 * const doc = await loadConfigFile("runtime.toml", fileSchema, {
 *   what: "runtime config",
 *   fail: (message, o) => new RuntimeError("RUNTIME_CONFIG_INVALID", message, { cause: o.cause, details: { fields: o.fields } }),
 * });
 * ```
 */
export async function loadConfigFile<S extends z.ZodType>(path: string, schema: S, opts: ConfigFileOptions): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw opts.fail(`cannot read ${opts.what} ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  return parseConfigText(path, text, schema, opts);
}

/** {@link loadConfigFile} without the read: `path` names the source in messages and picks the syntax. */
export function parseConfigText<S extends z.ZodType>(path: string, text: string, schema: S, opts: ConfigFileOptions): z.output<S> {
  const json = path.endsWith(".json");
  let doc: unknown;
  try {
    doc = json ? JSON.parse(text) : parseToml(text);
  } catch (e) {
    throw opts.fail(`${path} is not valid ${json ? "JSON" : "TOML"}: ${json ? jsonSyntaxProblem(text) : tomlSyntaxProblem(e)}`, { cause: e });
  }
  const r = schema.safeParse(doc, { error: issueMessage });
  if (!r.success) {
    const fields = configProblems(r.error.issues);
    throw opts.fail(`${path}: ${fields.map((f) => `${f.field}: ${f.problem}`).join("; ")}`, { fields });
  }
  return r.data;
}

/**
 * Where the JSON breaks, without the parser's message: Node 20 quotes the source around
 * the fault in it, and a config file's source holds secrets.
 */
function jsonSyntaxProblem(text: string): string {
  const at = jsonErrorPosition(text);
  return at === undefined ? "syntax error" : `${at.problem} at line ${at.line}, column ${at.column} (offset ${at.offset})`;
}

/** smol-toml's first message line is a fixed text (its source excerpt follows on later lines); plus the position. */
function tomlSyntaxProblem(e: unknown): string {
  const err = e as { message?: unknown; line?: unknown; column?: unknown };
  const first = typeof err.message === "string" ? (err.message.split("\n")[0] ?? "") : "syntax error";
  return typeof err.line === "number" && typeof err.column === "number" ? `${first} (line ${err.line}, column ${err.column})` : first;
}

/**
 * A key path as TOML spells it: the table in brackets, then the key:
 * `[telemetry] segment_bytes`, `agent_id`, `[node] "odd key"`, `[upstreams[1]] url`.
 */
export function configKeyPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(top level)";
  const parts = path.map((k) => (typeof k === "number" ? `[${k}]` : tomlKey(String(k))));
  const last = parts.length - 1;
  // An index as the last component names an array element of the key before it.
  const keyAt = typeof path[last] === "number" ? Math.max(0, last - 1) : last;
  const table = parts.slice(0, keyAt).reduce((acc, p) => (acc === "" || p.startsWith("[") ? acc + p : `${acc}.${p}`), "");
  const key = parts.slice(keyAt).join("");
  return table === "" ? key : `[${table}] ${key}`;
}

/** One entry per bad key; an unknown key is reported at its own path. */
export function configProblems(issues: readonly z.core.$ZodIssue[]): FieldProblem[] {
  return issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((k) => ({ field: configKeyPath([...issue.path, k]), problem: "unknown key" }))
      : [{ field: configKeyPath(issue.path), problem: issue.message }],
  );
}

function tomlKey(k: string): string {
  const s = k.slice(0, MAX_KEY_CHARS);
  return BARE_KEY_RE.test(s) ? s : JSON.stringify(s);
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
  array: "an array",
  object: "a table",
  record: "a table",
};

/** What a TOML (or JSON) value is, in the file's own terms. */
function valueKind(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "number") return Number.isInteger(v) ? "an integer" : "a float";
  if (typeof v === "bigint") return "an integer";
  if (typeof v === "boolean") return "a boolean";
  if (typeof v === "string") return "a string";
  if (v instanceof Date) return "a date-time";
  return "a table";
}

/**
 * Messages in the file's terms for the issues a config schema raises; `undefined`
 * keeps zod's (or a schema's own message, which always wins).
 */
function issueMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case "invalid_type":
      return `expected ${TYPE_NAMES[iss.expected] ?? iss.expected}, got ${valueKind(iss.input)}`;
    case "too_small":
      return boundMessage(iss.origin, "at least", iss.minimum, iss.inclusive);
    case "too_big":
      return boundMessage(iss.origin, "at most", iss.maximum, iss.inclusive);
    case "invalid_value":
      return `expected one of ${iss.values.map((v) => JSON.stringify(v)).join(", ")}`;
    default:
      return undefined;
  }
}

function boundMessage(origin: string, word: "at least" | "at most", bound: number | bigint, inclusive: boolean | undefined): string | undefined {
  const n = Number(bound);
  if (origin === "number" || origin === "int" || origin === "bigint") {
    const op = word === "at least" ? (inclusive === false ? ">" : "≥") : inclusive === false ? "<" : "≤";
    return `expected a number ${op} ${n}`;
  }
  if (origin === "string") return word === "at least" && n === 1 ? "must not be empty" : `must be ${word} ${n} characters`;
  if (origin === "array" || origin === "set") return word === "at least" && n === 1 ? "must not be empty" : `must have ${word} ${n} entries`;
  return undefined;
}
