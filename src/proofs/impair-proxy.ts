/**
 * A TCP impairment proxy on loopback: what the relay proof suites put between
 * two edged when the machine cannot run `tc netem` in a network namespace
 * (this one: "Specified qdisc kind is unknown"). It forwards bytes unchanged
 * (TLS passes through end to end, so mTLS is still between the two daemons)
 * and impairs them the way the seed's VAL19 does:
 *
 *   - `down`: every connection is accepted and reset at once (an outage);
 *   - `dialDelayMs`: the upstream connection is opened only after this delay
 *     (the seed's "200/500 ms dial delay");
 *   - `latencyMs`: every chunk is held this long in each direction;
 *   - `bytesPerSecond`: each direction is paced to this rate (0 = unlimited);
 *   - `cutAfterBytes`: the next connection is cut after this many bytes
 *     upstream, once ("cut after 500 B retried cleanly").
 *
 * Settings change at run time (`set`) and apply to new chunks at once.
 * `stats()` reports what crossed, per connection, as the seed's informational
 * throughput figures (last_conn_bytes / last_conn_ms).
 */
import { connect, createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface Impairment {
  down: boolean;
  dialDelayMs: number;
  latencyMs: number;
  bytesPerSecond: number;
  cutAfterBytes: number;
}

export interface ProxyStats {
  connections: number;
  refused: number;
  cuts: number;
  bytes_up: number;
  bytes_down: number;
  last_conn_bytes: number;
  last_conn_ms: number;
}

export interface ImpairProxy {
  /** host:port to give the sender instead of the real peer's address. */
  address: string;
  set(change: Partial<Impairment>): void;
  settings(): Impairment;
  stats(): ProxyStats;
  /** Resets every open connection (an outage starting mid-transfer). */
  resetAll(): void;
  close(): Promise<void>;
}

export const NO_IMPAIRMENT: Readonly<Impairment> = { down: false, dialDelayMs: 0, latencyMs: 0, bytesPerSecond: 0, cutAfterBytes: 0 };

export async function startImpairProxy(target: { host: string; port: number }, initial: Partial<Impairment> = {}): Promise<ImpairProxy> {
  const state: ProxyState = { closing: new AbortController(), cfg: { ...NO_IMPAIRMENT, ...initial }, stats: { connections: 0, refused: 0, cuts: 0, bytes_up: 0, bytes_down: 0, last_conn_bytes: 0, last_conn_ms: 0 }, open: new Set() };
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    state.open.add(client);
    client.once("close", () => state.open.delete(client));
    client.on("error", () => undefined);
    if (state.cfg.down) {
      state.stats.refused += 1;
      client.resetAndDestroy();
      return;
    }
    state.stats.connections += 1;
    void pipeConnection(client, target, state);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === "object" && addr !== null ? addr.port : 0;
  return {
    address: `127.0.0.1:${port}`,
    set: (change) => {
      state.cfg = { ...state.cfg, ...change };
    },
    settings: () => ({ ...state.cfg }),
    stats: () => ({ ...state.stats }),
    resetAll: () => {
      for (const s of state.open) s.resetAndDestroy();
    },
    close: async () => {
      // A pending dial delay (up to an hour for a black-hole peer) must not keep the process alive.
      state.closing.abort();
      for (const s of state.open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface ProxyState {
  closing: AbortController;
  cfg: Impairment;
  stats: ProxyStats;
  open: Set<Socket>;
}

async function pipeConnection(client: Socket, target: { host: string; port: number }, state: ProxyState): Promise<void> {
  const started = performance.now();
  // Bytes the client sends before the upstream exists wait, paused, in the socket.
  client.pause();
  if (state.cfg.dialDelayMs > 0) {
    try {
      await sleep(state.cfg.dialDelayMs, undefined, { signal: state.closing.signal });
    } catch {
      client.destroy();
      return;
    }
  }
  if (client.destroyed) return;
  const upstream = connect({ port: target.port, host: target.host, allowHalfOpen: true });
  state.open.add(upstream);
  upstream.once("close", () => state.open.delete(upstream));
  upstream.on("error", () => client.destroy());
  client.on("error", () => upstream.destroy());
  // A clean close lets the other direction drain (its end follows through forward); only an error tears both down.
  client.once("close", (hadError) => hadError && upstream.destroy());
  upstream.once("close", (hadError) => hadError && client.destroy());
  const cutAt = state.cfg.cutAfterBytes;
  // A cut is one-shot: the next connection goes through unless the caller sets it again.
  if (cutAt > 0) state.cfg = { ...state.cfg, cutAfterBytes: 0 };
  let moved = 0;
  client.once("close", () => {
    state.stats.last_conn_bytes = moved;
    state.stats.last_conn_ms = Math.round(performance.now() - started);
  });
  let up = 0;
  forward(client, upstream, state, (n) => {
    state.stats.bytes_up += n;
    moved += n;
    up += n;
    if (cutAt > 0 && up >= cutAt) {
      state.stats.cuts += 1;
      client.resetAndDestroy();
      upstream.resetAndDestroy();
      return false;
    }
    return true;
  });
  forward(upstream, client, state, (n) => {
    state.stats.bytes_down += n;
    moved += n;
    return true;
  });
  upstream.once("connect", () => client.resume());
}

/** At most this many bytes wait inside the proxy per direction before the sender is paused (backpressure). */
const HIGH_WATER = 1024 * 1024;

/**
 * Moves chunks from `from` to `to` in order, like a link: each chunk leaves at
 * max(arrival + latency, max(previous departure, arrival) + its serialisation time at the
 * rate), so latency pipelines and the rate paces. `onChunk` may stop the flow.
 */
function forward(from: Socket, to: Socket, state: ProxyState, onChunk: (n: number) => boolean): void {
  let lastDeparture = 0;
  let queued = 0;
  let chain = Promise.resolve();
  from.on("data", (chunk: Buffer) => {
    const c = state.cfg;
    const now = performance.now();
    const serialise = c.bytesPerSecond > 0 ? (chunk.length / c.bytesPerSecond) * 1000 : 0;
    const departure = Math.max(now + c.latencyMs, Math.max(lastDeparture, now) + serialise);
    lastDeparture = departure;
    queued += chunk.length;
    if (queued > HIGH_WATER) from.pause();
    chain = chain.then(async () => {
      const wait = departure - performance.now();
      if (wait > 0) await sleep(wait);
      queued -= chunk.length;
      if (queued <= HIGH_WATER && !from.destroyed) from.resume();
      if (to.destroyed || !onChunk(chunk.length)) return;
      to.write(chunk);
    });
  });
  from.once("end", () => {
    void chain.then(() => to.end());
  });
}
