import type * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import type { DecisionRequest, EngineDecision } from "../types.js";

/** Requests whose key is longer are not cached (keeps the cache's memory bounded: ≤ size × this). */
const MAX_CACHE_KEY_CHARS = 1024;

/**
 * Recent answers keyed by exactly what Cedar was asked (its answer is a pure
 * function of that: no entities, no clock). First in, first out: the oldest
 * answer is evicted first, and a hit does not make an answer younger.
 * Answers are copied in and out, so no caller can alter a remembered one.
 * @internal
 */
export class DecisionCache {
  readonly #size: number;
  /** Answers by request key, oldest first (evicted first). */
  readonly #answers = new Map<string, EngineDecision>();

  /** `size` answers at most; 0 (or less) turns the cache off. */
  constructor(size: number) {
    this.#size = size;
  }

  /** The key for a request as Cedar is asked it (`context` as cut down), or undefined when it is not to be cached. */
  keyOf(req: DecisionRequest, context: cedar.Context): string | undefined {
    if (!(this.#size > 0)) return undefined;
    const key = JSON.stringify([req.action, req.principal.type, req.principal.id, req.resource.type, req.resource.id, context]);
    return key.length <= MAX_CACHE_KEY_CHARS ? key : undefined;
  }

  get(key: string): EngineDecision | undefined {
    const hit = this.#answers.get(key);
    return hit ? copy(hit) : undefined;
  }

  set(key: string, decision: EngineDecision): void {
    if (this.#answers.size >= this.#size) this.#answers.delete(this.#answers.keys().next().value as string);
    this.#answers.set(key, copy(decision));
  }

  clear(): void {
    this.#answers.clear();
  }
}

function copy(d: EngineDecision): EngineDecision {
  return { decision: d.decision, policies: [...d.policies], errors: [...d.errors] };
}
