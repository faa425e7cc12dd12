/** Reading the fleet back from the control plane (what an operator sees), for the suites' checks. */
import type { CpClient, Node } from "../cpapi/index.js";

/** Every node carrying `label` (k=v), all pages. */
export async function nodesWithLabel(owner: CpClient, label: string, signal?: AbortSignal): Promise<Node[]> {
  const out: Node[] = [];
  let cursor: string | undefined;
  do {
    const page = await owner.listNodes({ label: [label], limit: 1000, ...(cursor !== undefined ? { cursor } : {}) }, signal ? { signal } : {});
    out.push(...page.nodes);
    cursor = page.next_cursor ?? undefined;
  } while (cursor !== undefined);
  return out;
}

/** Polls `fn` every `everyMs` until it returns a value; undefined when `ms` passed first (the caller decides what that means). */
export async function until<T>(ms: number, fn: () => Promise<T | undefined>, signal?: AbortSignal, everyMs = 1000): Promise<T | undefined> {
  const end = performance.now() + ms;
  for (;;) {
    signal?.throwIfAborted();
    const v = await fn();
    if (v !== undefined) return v;
    if (performance.now() > end) return undefined;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
