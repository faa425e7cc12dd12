import type { Release } from "../../cpapi/index.js";
import type { Clock } from "../../lib/index.js";

/** A channel's latest release, ready to send: its JSON and ETag computed once. */
export interface CachedLatest {
  release: Release;
  etag: string;
  json: string;
}

interface Entry {
  value: CachedLatest | undefined;
  at: number;
}

/**
 * The latest release per channel, kept in memory: the poll route answers from
 * here (a 304 costs a map lookup). A publish in this process invalidates its
 * channel before it answers, so the next request sees it. Another server's
 * publish is seen after at most `ttlMs` (0: never cached). A fill that raced
 * an invalidation is dropped (per-channel generation), so a stale read is
 * never stored after a publish.
 */
export class LatestCache {
  private readonly entries = new Map<string, Entry>();
  private readonly generations = new Map<string, number>();

  constructor(private readonly clock: Clock, private readonly ttlMs: number) {}

  get(channel: string): { hit: true; value: CachedLatest | undefined } | { hit: false; generation: number } {
    const e = this.entries.get(channel);
    if (e && this.clock.now() - e.at < this.ttlMs) return { hit: true, value: e.value };
    return { hit: false, generation: this.generations.get(channel) ?? 0 };
  }

  fill(channel: string, generation: number, release: Release | undefined): CachedLatest | undefined {
    const value = release ? { release, etag: `"${release.release_id}"`, json: JSON.stringify(release) } : undefined;
    if (this.ttlMs > 0 && (this.generations.get(channel) ?? 0) === generation) this.entries.set(channel, { value, at: this.clock.now() });
    return value;
  }

  invalidate(channel: string): void {
    this.generations.set(channel, (this.generations.get(channel) ?? 0) + 1);
    this.entries.delete(channel);
  }
}

/** True when an If-None-Match header matches `etag` (weak comparison, RFC 9110 §13.1.2; `*` matches any). */
export function ifNoneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const h = header.trim();
  if (h === "*") return true;
  return h.split(",").some((t) => {
    const tag = t.trim();
    return (tag.startsWith("W/") ? tag.slice(2) : tag) === etag;
  });
}
