/**
 * A ledger-shaped LMDB workload, as a pure function of a seed: each step is one
 * write transaction (enqueue a segment with a row per peer and an inbox entry,
 * move a peer's delivery state, advance the application cursor, purge), so the
 * expected database after any number of committed steps is known exactly. The
 * workload child (ledger-workload.ts) commits the steps in order; the checker
 * compares a recovered database with these states.
 */
import { seededRng } from "../../../src/lib/index.js";

export type Step = { label: string; puts: [string, string][]; dels: string[] };

const PEERS = ["peer-a", "peer-b"];
const STATES = ["scheduled", "inflight", "acked", "failed", "deadletter"] as const;

export function ledgerSteps(seed: number, count: number): Step[] {
  const rng = seededRng(seed);
  const steps: Step[] = [];
  const live: number[] = [];
  let inbox = 0;
  for (let i = 0; i < count; i++) {
    const r = rng();
    const pick = live.length > 0 ? live[Math.floor(rng() * live.length)] : undefined;
    if (pick === undefined || r < 0.45) {
      // Enqueue: segment row, one delivery row per peer, an inbox entry (receiver side), all in one transaction.
      const seg = `seg-${String(i).padStart(5, "0")}`;
      const pad = "x".repeat(Math.floor(rng() * 3000));
      inbox++;
      live.push(i);
      steps.push({
        label: `enqueue ${seg}`,
        puts: [
          [`segment/${seg}`, JSON.stringify({ step: i, size: pad.length, kind: "data", pad })],
          ...PEERS.map((p): [string, string] => [`delivery/${seg}/${p}`, JSON.stringify({ state: "scheduled", attempts: 0, step: i })]),
          [`inbox/${String(inbox).padStart(8, "0")}`, JSON.stringify({ seg, step: i })],
        ],
        dels: [],
      });
    } else if (r < 0.85) {
      const seg = `seg-${String(pick).padStart(5, "0")}`;
      const peer = PEERS[Math.floor(rng() * PEERS.length)] ?? "peer-a";
      const state = STATES[Math.floor(rng() * STATES.length)] ?? "acked";
      steps.push({ label: `state ${seg} ${peer} ${state}`, puts: [[`delivery/${seg}/${peer}`, JSON.stringify({ state, attempts: i, step: i })], ["meta/cursor", String(i)]], dels: [] });
    } else {
      const seg = `seg-${String(pick).padStart(5, "0")}`;
      live.splice(live.indexOf(pick), 1);
      steps.push({ label: `purge ${seg}`, puts: [], dels: [`segment/${seg}`, ...PEERS.map((p) => `delivery/${seg}/${p}`)] });
    }
  }
  return steps;
}

/** The database after the first `n` steps committed. */
export function stateAfter(steps: readonly Step[], n: number): Map<string, string> {
  // "created": the commit that makes a new environment's meta pages durable before it gets its name.
  const m = new Map<string, string>([["created", "1"]]);
  for (const s of steps.slice(0, n)) {
    for (const [k, v] of s.puts) m.set(k, v);
    for (const k of s.dels) m.delete(k);
  }
  return m;
}
