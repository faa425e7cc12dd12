/**
 * A JSON parser that refuses what `JSON.parse` silently loses: an object with
 * the same key twice (`JSON.parse` keeps the last one, so a checker reading
 * the first and a consumer reading the last disagree) and nesting deeper than
 * a bound (a depth bomb). Everything else is RFC 8259 JSON, parsed to the
 * same value `JSON.parse` gives (a `__proto__` key becomes an own property, as
 * with `JSON.parse`). Recursion is bounded by `maxDepth`, so a hostile body
 * cannot exhaust the stack.
 */
import { formatFieldPath } from "./field-problems.js";

/** Why a text was refused: not JSON at all, or JSON whose meaning a plain parser would change. */
export type JsonRefusal = "syntax" | "duplicate-key" | "too-deep";

export type FaithfulJson =
  | { ok: true; value: unknown }
  | {
      ok: false;
      kind: JsonRefusal;
      /** Where, as `params.force` / `items[2]` / `(root)`. */
      path: string;
      /** Character offset in the text. */
      offset: number;
      message: string;
    };

/** Options of {@link parseFaithfulJson}. */
export interface FaithfulJsonOptions {
  /** Deepest nesting of arrays and objects (the top-level value is depth 0). Default 64. */
  maxDepth?: number;
}

const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

class Refused extends Error {
  constructor(
    readonly kind: JsonRefusal,
    readonly path: readonly (string | number)[],
    readonly offset: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Parses `text` as JSON, refusing duplicate keys and excessive depth.
 *
 * ### Examples
 * ```ts
 * parseFaithfulJson('{"a":1}');         // { ok: true, value: { a: 1 } }
 * parseFaithfulJson('{"a":1,"a":null}'); // { ok: false, kind: "duplicate-key", path: "a", … }
 * ```
 */
export function parseFaithfulJson(text: string, opts: FaithfulJsonOptions = {}): FaithfulJson {
  const p = new Parser(text, opts.maxDepth ?? 64);
  try {
    p.ws();
    const value = p.value(0);
    p.ws();
    if (p.pos !== text.length) p.fail("syntax", "unexpected text after the JSON value");
    return { ok: true, value };
  } catch (e) {
    if (!(e instanceof Refused)) throw e;
    return { ok: false, kind: e.kind, path: formatFieldPath(e.path), offset: e.offset, message: e.message };
  }
}

class Parser {
  pos = 0;
  readonly #path: (string | number)[] = [];

  constructor(
    readonly text: string,
    readonly maxDepth: number,
  ) {}

  fail(kind: JsonRefusal, message: string): never {
    throw new Refused(kind, [...this.#path], this.pos, message);
  }

  ws(): void {
    const t = this.text;
    let i = this.pos;
    for (;;) {
      const c = t.charCodeAt(i);
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) break;
      i++;
    }
    this.pos = i;
  }

  value(depth: number): unknown {
    const c = this.text[this.pos];
    if (c === "{" || c === "[") {
      if (depth >= this.maxDepth) this.fail("too-deep", `nested deeper than ${this.maxDepth} levels`);
      return c === "{" ? this.object(depth + 1) : this.array(depth + 1);
    }
    if (c === '"') return this.string();
    if (this.text.startsWith("true", this.pos)) return this.literal("true", true);
    if (this.text.startsWith("false", this.pos)) return this.literal("false", false);
    if (this.text.startsWith("null", this.pos)) return this.literal("null", null);
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.text);
    if (!m) this.fail("syntax", c === undefined ? "unexpected end of text" : `unexpected character ${JSON.stringify(c)}`);
    this.pos = NUMBER_RE.lastIndex;
    return Number(m[0]);
  }

  literal<T>(word: string, v: T): T {
    this.pos += word.length;
    return v;
  }

  string(): string {
    const start = this.pos;
    const t = this.text;
    let i = start + 1;
    let escaped = false;
    for (;;) {
      const c = t.charCodeAt(i);
      if (c === 0x22) break;
      if (c === 0x5c) {
        escaped = true;
        i += 2;
        continue;
      }
      if (Number.isNaN(c) || c < 0x20) {
        this.pos = i;
        this.fail("syntax", Number.isNaN(c) ? "unterminated string" : "control character in a string");
      }
      i++;
    }
    this.pos = i + 1;
    if (!escaped) return t.slice(start + 1, i);
    try {
      // The token is delimited exactly; JSON.parse applies the escape rules.
      return JSON.parse(t.slice(start, i + 1)) as string;
    } catch {
      this.pos = start;
      return this.fail("syntax", "invalid string");
    }
  }

  object(depth: number): Record<string, unknown> {
    this.pos++;
    const out: Record<string, unknown> = {};
    const seen = new Set<string>();
    this.ws();
    if (this.text[this.pos] === "}") {
      this.pos++;
      return out;
    }
    for (;;) {
      if (this.text[this.pos] !== '"') this.fail("syntax", "expected a string key");
      const keyAt = this.pos;
      const key = this.string();
      this.ws();
      if (this.text[this.pos] !== ":") this.fail("syntax", "expected ':'");
      this.pos++;
      this.ws();
      this.#path.push(key);
      if (seen.has(key)) {
        this.pos = keyAt;
        this.fail("duplicate-key", `the key ${JSON.stringify(key)} appears twice in one object (a parser keeps only one of them)`);
      }
      seen.add(key);
      const v = this.value(depth);
      this.#path.pop();
      // An own property even for "__proto__", as JSON.parse makes it (never the prototype setter).
      if (key === "__proto__") Object.defineProperty(out, key, { value: v, writable: true, enumerable: true, configurable: true });
      else out[key] = v;
      this.ws();
      const c = this.text[this.pos];
      this.pos++;
      if (c === "}") return out;
      if (c !== ",") {
        this.pos--;
        this.fail("syntax", "expected ',' or '}'");
      }
      this.ws();
    }
  }

  array(depth: number): unknown[] {
    this.pos++;
    const out: unknown[] = [];
    this.ws();
    if (this.text[this.pos] === "]") {
      this.pos++;
      return out;
    }
    for (;;) {
      this.#path.push(out.length);
      out.push(this.value(depth));
      this.#path.pop();
      this.ws();
      const c = this.text[this.pos];
      this.pos++;
      if (c === "]") return out;
      if (c !== ",") {
        this.pos--;
        this.fail("syntax", "expected ',' or ']'");
      }
      this.ws();
    }
  }
}
