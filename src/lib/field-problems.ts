import type { z } from "zod";

const IDENT_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Field names come from untrusted input; keep messages bounded. */
const MAX_KEY_CHARS = 64;

/** `agent_artifact.digest`, `inputs["odd key"]`, or `(root)`. */
export function formatFieldPath(path: readonly PropertyKey[]): string {
  if (path.length === 0) return "(root)";
  return path
    .map((k, i) => {
      if (typeof k === "number") return `[${k}]`;
      const s = String(k).slice(0, MAX_KEY_CHARS);
      return IDENT_RE.test(s) ? `${i === 0 ? "" : "."}${s}` : `[${JSON.stringify(s)}]`;
    })
    .join("");
}

export interface FieldProblem {
  readonly field: string;
  readonly problem: string;
}

/** Flattens zod issues into one entry per field; an unknown-keys issue becomes one entry per key. */
export function fieldProblems(issues: readonly z.core.$ZodIssue[]): FieldProblem[] {
  return issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((k) => ({ field: formatFieldPath([...issue.path, k]), problem: "unknown field" }))
      : [{ field: formatFieldPath(issue.path), problem: issue.message }],
  );
}

/** `field: problem; field: problem` for one-line error messages. */
export function formatProblems(problems: readonly FieldProblem[]): string {
  return problems.map((p) => `${p.field}: ${p.problem}`).join("; ");
}
