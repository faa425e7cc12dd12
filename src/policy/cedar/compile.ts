/** Compilation: policy files parsed by Cedar, each policy with a stable id, errors naming file and line. */
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import { PolicyError } from "../errors.js";
import type { PolicyFile } from "../types.js";

/** One policy of the bundle, as compiled. @internal */
export interface CompiledPolicy {
  /** `@id` annotation, else `<file>#<index>` (index counts from 0 within the file). */
  id: string;
  file: string;
  /** Source text of the statement (annotations included). */
  text: string;
  json: cedar.PolicyJson;
}

/** Every policy of `files`, in order; refuses two policies with the same id. */
export function compilePolicies(files: readonly PolicyFile[]): CompiledPolicy[] {
  const policies: CompiledPolicy[] = [];
  const seen = new Map<string, string>();
  for (const file of files) {
    for (const p of compileFile(file)) {
      const other = seen.get(p.id);
      if (other !== undefined) {
        throw new PolicyError("POLICY_COMPILE_FAILED", `duplicate policy id "${p.id}" in ${p.file} (already used in ${other})`, {
          details: { file: p.file, policy: p.id },
        });
      }
      seen.set(p.id, p.file);
      policies.push(p);
    }
  }
  return policies;
}

function compileFile(file: PolicyFile): CompiledPolicy[] {
  const text = file.text;
  const check = cedar.checkParsePolicySet({ staticPolicies: text });
  const { segments, trailingContent } = splitStatements(text);
  if (check.type === "failure") {
    // Some failures (a template among static policies) come without a location: parsing statement
    // by statement below finds the one at fault and names its line.
    if (check.errors.some((e) => (e.sourceLocations?.length ?? 0) > 0)) throw compileError(file.name, text, 0, check.errors);
    for (const seg of segments) {
      const stmt = text.slice(seg.start, seg.end);
      const parsed = cedar.policyToJson(stmt);
      if (parsed.type === "failure") throw compileError(file.name, text, seg.start, parsed.errors, stmt);
    }
    throw compileError(file.name, text, 0, check.errors);
  }
  if (trailingContent) {
    // Cedar parsed the file, so this is our splitter disagreeing with Cedar: refuse rather than guess.
    const at = locate(text, segments.at(-1)?.end ?? 0);
    throw new PolicyError("POLICY_COMPILE_FAILED", `${file.name}:${at.line}:${at.column}: text after the last policy`, { details: { file: file.name, ...at } });
  }
  const out: CompiledPolicy[] = [];
  segments.forEach((seg, index) => {
    const stmt = text.slice(seg.start, seg.end);
    const parsed = cedar.policyToJson(stmt);
    if (parsed.type === "failure") throw compileError(file.name, text, seg.start, parsed.errors, stmt);
    const annotated = parsed.json.annotations?.["id"];
    if (annotated !== undefined && annotated.trim() === "") {
      const at = locate(text, seg.start);
      throw new PolicyError("POLICY_COMPILE_FAILED", `${file.name}:${at.line}:${at.column}: @id must not be empty`, { details: { file: file.name, ...at } });
    }
    out.push({ id: annotated ?? `${file.name}#${index}`, file: file.name, text: stmt, json: parsed.json });
  });
  return out;
}

/**
 * Splits policy text into statements at each top-level `;`, skipping string
 * literals and `//` comments. Only boundaries come from here: every piece is
 * then parsed by Cedar as exactly one policy, so a disagreement with Cedar's
 * lexer fails the compile instead of misattributing a policy.
 * @internal
 */
function splitStatements(text: string): { segments: { start: number; end: number }[]; trailingContent: boolean } {
  const segments: { start: number; end: number }[] = [];
  const n = text.length;
  let start = 0;
  let content = false;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      content = true;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x5c /* \ */) {
          i += 2;
          continue;
        }
        i++;
        if (d === 0x22) break;
      }
      continue;
    }
    if (c === 0x2f /* / */ && text.charCodeAt(i + 1) === 0x2f) {
      while (i < n && text.charCodeAt(i) !== 0x0a && text.charCodeAt(i) !== 0x0d) i++;
      continue;
    }
    if (c === 0x3b /* ; */) {
      segments.push({ start, end: i + 1 });
      start = i + 1;
      content = false;
    } else if (!/\s/.test(text[i] ?? "")) {
      content = true;
    }
    i++;
  }
  return { segments, trailingContent: content };
}

/** Line and column (1-based, in characters) of a character offset. */
function locate(text: string, charOffset: number): { line: number; column: number } {
  const before = text.slice(0, charOffset);
  const lineStart = Math.max(before.lastIndexOf("\n"), before.lastIndexOf("\r")) + 1;
  const line = (before.match(/\r\n|\r|\n/g) ?? []).length + 1;
  return { line, column: charOffset - lineStart + 1 };
}

/** Cedar reports UTF-8 byte offsets into the text it parsed; this maps one to a character offset. */
function byteToChar(text: string, byteOffset: number): number {
  return Buffer.from(text, "utf8").subarray(0, byteOffset).toString("utf8").length;
}

function compileError(file: string, text: string, base: number, errors: readonly cedar.DetailedError[], parsedText = text): PolicyError {
  const lines: string[] = [];
  let first: { line: number; column: number } | undefined;
  for (const e of errors) {
    const loc = e.sourceLocations?.[0];
    if (loc) {
      const at = locate(text, base + byteToChar(parsedText, loc.start));
      first ??= at;
      lines.push(`${file}:${at.line}:${at.column}: ${e.message}${loc.label ? ` (${loc.label})` : ""}`);
    } else {
      lines.push(`${file}: ${e.message}`);
    }
  }
  if (lines.length === 0) lines.push(`${file}: the policy text does not parse`);
  return new PolicyError("POLICY_COMPILE_FAILED", lines.join("; "), { details: { file, ...(first ?? {}) } });
}
