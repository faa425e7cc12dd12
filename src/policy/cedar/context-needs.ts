/** Which context paths a set of policies reads, from Cedar's JSON AST of their conditions. */

/** What a slice's policies read of one context value. @internal */
export interface Need {
  /** Read as a whole value (compared, passed to a function, …): send it all. */
  whole: boolean;
  /** Attributes read with `.attr` / tested with `has attr`. */
  children: Map<string, Need>;
}

export function newNeed(): Need {
  return { whole: false, children: new Map() };
}

function needAt(root: Need, path: readonly string[]): Need {
  let n = root;
  for (const attr of path) {
    let c = n.children.get(attr);
    if (!c) {
      c = newNeed();
      n.children.set(attr, c);
    }
    n = c;
  }
  return n;
}

/** `context`, `context.a`, `context.a.b`, … as a path; undefined for any other expression. */
function contextPath(e: unknown): string[] | undefined {
  if (!e || typeof e !== "object") return undefined;
  const o = e as Record<string, unknown>;
  if (o["Var"] === "context") return [];
  const dot = o["."] as { left?: unknown; attr?: unknown } | undefined;
  if (dot && typeof dot === "object" && typeof dot.attr === "string") {
    const p = contextPath(dot.left);
    return p === undefined ? undefined : [...p, dot.attr];
  }
  return undefined;
}

/**
 * Records every context path an expression (Cedar's JSON AST) reads. Walks
 * every node, so an expression form it does not know still counts: any use of
 * `context` other than `.attr` / `has attr` marks the value read whole.
 */
export function collectNeeds(e: unknown, root: Need): void {
  if (Array.isArray(e)) {
    for (const x of e) collectNeeds(x, root);
    return;
  }
  if (!e || typeof e !== "object") return;
  const o = e as Record<string, unknown>;
  if ("Value" in o && Object.keys(o).length === 1) return; // a literal: data, never an expression
  const path = contextPath(o);
  if (path !== undefined) {
    needAt(root, path).whole = true;
    return;
  }
  const has = o["has"] as { left?: unknown; attr?: unknown } | undefined;
  if (has && typeof has === "object" && Object.keys(o).length === 1) {
    const left = contextPath(has.left);
    const attrs = typeof has.attr === "string" ? [has.attr] : Array.isArray(has.attr) && has.attr.every((x) => typeof x === "string") ? has.attr : undefined;
    if (left !== undefined && attrs !== undefined && attrs.length > 0) {
      needAt(root, [...left, ...attrs]);
      return;
    }
  }
  for (const v of Object.values(o)) collectNeeds(v, root);
}
