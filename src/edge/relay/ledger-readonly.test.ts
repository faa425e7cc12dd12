import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { SegmentInfo } from "../types.js";
import { openRelayLedger, RelayLedger } from "./ledger.js";

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const seg: SegmentInfo = { id: "ab".repeat(32), size: 10, kind: "data" };
const from = { id: "edge-a", cert_fingerprint: "sha256:" + "cd".repeat(32) };

describe("relay ledger, read-only (the edged SIGKILL harness reads a running node's ledger this way)", () => {
  it("reads what was committed, recovers nothing (an inflight delivery stays inflight) and refuses every change", async () => {
    const d = await mkdtemp(join(tmpdir(), "ledger-ro-"));
    dirs.push(d);
    const path = join(d, "ledger.lmdb");
    const w = await openRelayLedger(path);
    await w.schedule(seg, ["b"], "one_peer");
    await w.begin(seg.id, "b");
    await w.receive(seg, from);
    await w.close();

    const r = RelayLedger.openReadOnly(path);
    try {
      expect(r.delivery(seg.id, "b")?.state).toBe("inflight");
      expect(r.recovered).toEqual([]);
      expect(r.inbox(0, 10).map((e) => e.segment_id)).toEqual([seg.id]);
      await expect(r.receive({ ...seg, id: "ef".repeat(32) }, from)).rejects.toMatchObject({ code: "LEDGER_UNAVAILABLE" });
    } finally {
      await r.close();
    }
    // Nothing was written: a writable open still finds the attempt cut short.
    const again = await openRelayLedger(path);
    expect(again.recovered.map((x) => x.segment_id)).toEqual([seg.id]);
    await again.close();
  });
});
