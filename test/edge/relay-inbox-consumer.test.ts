// The receiver's inbox consumer over the REAL ledger and segment store: a relayed release this node refuses
// for good (a rollback, under its own trust root) and a poison entry of any kind are passed, and what was
// passed — code, claimed statement digest and sequence, from which peer, when — is recorded durably with the
// cursor move, for `edgectl relay status` and the metrics.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MAX_APPLY_ATTEMPTS, activateRelayedRelease, openRelayLedger, packActiveRelease, startInboxConsumer, watchActiveRelease } from "../../src/edge/index.js";
import type { InboxApplier, RelayLedger } from "../../src/edge/index.js";
import { startReleaseHooks } from "../../src/edge/daemon/release-hooks.js";
import { ledgerInbox } from "../../src/edge/daemon/relay-parts.js";
import { openSegmentStore } from "../../src/edge/storage/index.js";
import type { SegmentStore, SegmentKind } from "../../src/edge/index.js";
import { EdgeError } from "../../src/edge/index.js";
import { readNodeState, setTrustRoot } from "../../src/node/index.js";
import { createLogger } from "../../src/observability/index.js";
import { activateRelease } from "../../src/runtime/index.js";
import { makeRelease, testKeys } from "../helpers/release.js";
import { testEdgeConfig } from "../helpers/relay-parts-double.js";

const log = createLogger({ name: "test.inbox-consumer", level: "silent" });
const REPOSITORY = "registry.example/prod/agent";
const FROM = { id: "edge-a", cert_fingerprint: "sha256:00" };

describe("the inbox consumer over the real ledger", () => {
  let dir: string;
  let ledger: RelayLedger;
  let store: SegmentStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "inbox-consumer-"));
    ledger = await openRelayLedger(join(dir, "ledger.lmdb"));
    store = await openSegmentStore({ dir: join(dir, "segments"), ceilingBytes: 256 << 20 });
  });
  afterEach(async () => {
    await ledger.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Stores the bytes and records their arrival from edge-a, as the receiver's sink does. */
  const arrive = async (bytes: Uint8Array, kind: SegmentKind): Promise<string> => {
    const { info } = await store.put(bytes, kind);
    await ledger.receive(info, FROM);
    return info.id;
  };

  it("attack: a peer relays a release from a lower sequence — refused by this node's own rules, passed, and recorded durably with its code, claimed statement digest and sequence, the sender and the time", async () => {
    const keys = testKeys();
    const rel = (tag: string, sequence: number) => makeRelease({ ref: `oci:${join(dir, "reg")}:${tag}`, keys, sequence, repository: REPOSITORY, agentText: `agent ${tag}` });
    const [v2, v3] = [await rel("v2", 2), await rel("v3", 3)];
    const [a, b] = [join(dir, "a"), join(dir, "b")];
    for (const root of [a, b]) await setTrustRoot(root, { keys: [keys.publicPem], repository: REPOSITORY });
    await activateRelease({ ref: v2.ref, stateRoot: a });
    await activateRelease({ ref: v3.ref, stateRoot: b });
    const packed = await packActiveRelease(a);
    if (packed === undefined) throw new Error("nothing active on a");
    const segment = await arrive(packed.bytes, "release");
    const data = await arrive(new TextEncoder().encode("after the downgrade"), "data");

    const config = testEdgeConfig(join(dir, "edge.toml"), b);
    config.relay = { ...config.relay, activateRelayedReleases: true, relayActivatedRelease: false };
    const hooks = startReleaseHooks({
      config, log, intervalMs: 3_600_000, inbox: ledgerInbox(ledger), store,
      engine: { enqueue: () => Promise.reject(new Error("not used")) },
      release: { watchActiveRelease, activateRelayedRelease },
    });
    await hooks.drain();
    await hooks.stop();
    expect((await readNodeState(b)).activation?.sequence).toBe(3);
    expect(ledger.cursor()).toBe(2); // the data segment after it was reached
    expect(data).toMatch(/^[0-9a-f]{64}$/);
    const closed = ledger.path;
    await ledger.close();
    ledger = await openRelayLedger(closed); // durable: read back after a reopen
    const r = ledger.inboxRejections();
    expect(r.entries).toEqual([expect.objectContaining({
      seq: 1, segment_id: segment, kind: "release", from: "edge-a", outcome: "refused", code: "ACTIVATION_ROLLBACK_REFUSED",
      statement_digest: packed.statementDigest, sequence: 2, attempts: 1, at: expect.any(String) as string,
    })]);
    expect(r.counts).toEqual([{ kind: "release", outcome: "refused", code: "ACTIVATION_ROLLBACK_REFUSED", count: 1 }]);
  });

  it("attack (poison entry, any kind): a data segment whose application keeps failing is passed after MAX_APPLY_ATTEMPTS drains as INBOX_ENTRY_ABANDONED, later arrivals still apply, and the record is durable", async () => {
    const poison = await arrive(new TextEncoder().encode("poison"), "data");
    await arrive(new TextEncoder().encode("fine"), "data");
    const applied: string[] = [];
    const data: InboxApplier = {
      apply: async (e) => {
        const text = Buffer.from(await store.get(e.segment.id)).toString();
        if (text === "poison") throw new EdgeError("LEDGER_UNAVAILABLE", "the application's disk is full");
        applied.push(text);
      },
    };
    const consumer = startInboxConsumer({ inbox: ledgerInbox(ledger), appliers: { data }, log, intervalMs: 3_600_000 });
    for (let i = 1; i < MAX_APPLY_ATTEMPTS; i++) await consumer.drain();
    expect({ cursor: ledger.cursor(), applied }).toEqual({ cursor: 0, applied: [] });
    await consumer.drain();
    await consumer.stop();
    expect({ cursor: ledger.cursor(), applied }).toEqual({ cursor: 2, applied: ["fine"] });
    expect(consumer.rejections().entries).toEqual([expect.objectContaining({
      seq: 1, segment_id: poison, kind: "data", from: "edge-a", outcome: "abandoned", code: "INBOX_ENTRY_ABANDONED", cause_code: "LEDGER_UNAVAILABLE", attempts: MAX_APPLY_ATTEMPTS,
    })]);
    expect(ledger.inboxRejections().counts).toEqual([{ kind: "data", outcome: "abandoned", code: "INBOX_ENTRY_ABANDONED", count: 1 }]);
  });

  it("a refusal (exit 4) of any kind is passed at once; a transient failure keeps the cursor and is tried again", async () => {
    await arrive(new TextEncoder().encode("refused"), "data");
    await arrive(new TextEncoder().encode("flaky"), "data");
    let flaky = 1;
    const data: InboxApplier = {
      apply: async (e) => {
        const text = Buffer.from(await store.get(e.segment.id)).toString();
        if (text === "refused") throw new EdgeError("SEGMENT_CORRUPT", "not for this node"); // exit 4
        if (text === "flaky" && flaky-- > 0) throw new Error("EBUSY");
      },
    };
    const consumer = startInboxConsumer({ inbox: ledgerInbox(ledger), appliers: { data }, log, intervalMs: 3_600_000 });
    await consumer.drain();
    expect(ledger.cursor()).toBe(1);
    await consumer.drain();
    await consumer.stop();
    expect(ledger.cursor()).toBe(2);
    expect(ledger.inboxRejections().entries.map((e) => [e.seq, e.outcome, e.code])).toEqual([[1, "refused", "SEGMENT_CORRUPT"]]);
  });

  it("the ledger passes an entry only at or after the cursor and within what it handed out (cursor and record in one transaction)", async () => {
    await arrive(new TextEncoder().encode("one"), "data");
    const record = { seq: 2, segment_id: "0".repeat(64), kind: "data" as const, from: "edge-a", outcome: "refused" as const, code: "X", message: "m", attempts: 1, at: "2026-12-06T00:00:00.000Z" };
    await expect(ledger.passInboxEntry(record)).rejects.toMatchObject({ code: "INBOX_CURSOR_INVALID" });
    expect(ledger.inboxRejections()).toEqual({ entries: [], counts: [] });
    await ledger.passInboxEntry({ ...record, seq: 1 });
    expect(ledger.cursor()).toBe(1);
    await expect(ledger.passInboxEntry({ ...record, seq: 0 })).rejects.toMatchObject({ code: "INBOX_CURSOR_INVALID" });
  });
});
