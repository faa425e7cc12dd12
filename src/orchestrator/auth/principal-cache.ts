import type { Clock } from "../../lib/index.js";
import type { Principal } from "../area.js";

interface Entry {
  principal: Principal;
  /** The token's own expiry (ms), re-checked on every use; Infinity when it has none. */
  expiresAt: number;
  /** When this entry must be looked up again (ms). */
  freshUntil: number;
}

/**
 * Recently authenticated bearer tokens, keyed by their SHA-256 (never the
 * token): the poll route is called thousands of times a second by the same
 * few credentials, and a store lookup per request would cost more than the
 * route. An entry lives `ttlMs` (a revocation made in the store takes effect
 * within that time; 0 disables the cache); a token's expiry is checked on
 * every use. Bounded: when full, it is cleared rather than grown.
 */
export class PrincipalCache {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly clock: Clock, private readonly ttlMs: number, private readonly maxEntries = 10_000) {}

  get(hash: string): { principal: Principal; expiresAt: number } | undefined {
    const e = this.entries.get(hash);
    if (!e) return undefined;
    if (this.clock.now() >= e.freshUntil) {
      this.entries.delete(hash);
      return undefined;
    }
    return e;
  }

  set(hash: string, principal: Principal, expiresAt: number): void {
    if (this.ttlMs <= 0) return;
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(hash, { principal, expiresAt, freshUntil: this.clock.now() + this.ttlMs });
  }

  clear(): void {
    this.entries.clear();
  }
}
