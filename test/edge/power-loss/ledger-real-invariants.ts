/**
 * What a ledger recovered after a power cut must satisfy, given the
 * acknowledgements the real-ledger workload printed before the cut
 * (`schedule <id>`, `begin <id> <peer>`, `acked <id> <peer>`,
 * `recv <id> <seq> new|dup`, `cursor <seq>`). Pure, so it is unit-checked
 * without LMDB; used once the real ledger is on main.
 */
export interface RecoveredLedger {
  segments: string[];
  deliveries: [string, string, string][];
  inbox: [number, string][];
  cursor: number;
}

export function ledgerViolations(acks: readonly string[], got: RecoveredLedger, peers: readonly string[] = ["peer-a", "peer-b"]): string[] {
  const v: string[] = [];
  const segs = new Set(got.segments);
  const state = new Map(got.deliveries.map(([s, p, st]) => [`${s}/${p}`, st]));
  const bySeq = new Map(got.inbox);
  const idSeqs = new Map<string, number[]>();
  for (const [seq, id] of got.inbox) idSeqs.set(id, [...(idSeqs.get(id) ?? []), seq]);
  let cursor = 0;
  for (const a of acks) {
    const [kind, id = "", x = "", y = ""] = a.split(" ");
    if (kind === "schedule") {
      if (!segs.has(id)) v.push(`acknowledged schedule of ${id} lost`);
      for (const p of peers) if (!state.has(`${id}/${p}`)) v.push(`acknowledged schedule of ${id}: delivery to ${p} lost (schedule applied in part?)`);
    } else if (kind === "acked" && state.get(`${id}/${x}`) !== "acked") {
      v.push(`acknowledged delivery of ${id} to ${x} is ${state.get(`${id}/${x}`) ?? "missing"}, not acked`);
    } else if (kind === "recv" && y === "new" && bySeq.get(Number(x)) !== id) {
      v.push(`acknowledged receipt of ${id} as inbox #${x} lost (inbox #${x} is ${bySeq.get(Number(x)) ?? "missing"})`);
    } else if (kind === "cursor") cursor = Math.max(cursor, Number(id));
  }
  for (const [id, seqs] of idSeqs) if (seqs.length > 1) v.push(`segment ${id} is in the inbox ${seqs.length} times (#${seqs.join(", #")}): the application would get it twice`);
  const seqs = got.inbox.map(([s]) => s).sort((a, b) => a - b);
  seqs.forEach((s, i) => {
    if (s !== i + 1) v.push(`inbox sequence numbers are not 1..n: position ${i + 1} holds #${s}`);
  });
  if (got.cursor < cursor) v.push(`application cursor went back from the acknowledged ${cursor} to ${got.cursor} (the application would see entries twice)`);
  if (got.cursor > seqs.length) v.push(`application cursor ${got.cursor} is past the last inbox entry ${seqs.length}`);
  for (const s of segs) for (const p of peers) if (!state.has(`${s}/${p}`)) v.push(`segment ${s} without its delivery to ${p} (schedule applied in part)`);
  return v;
}
