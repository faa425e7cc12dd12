import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../observability/index.js";
import { testEdgeConfig } from "../../../test/helpers/relay-parts-double.js";
import { EdgeError } from "../errors.js";
import type { SegmentKind } from "../types.js";
import { MAX_RELEASE_ATTEMPTS, startReleaseHooks } from "./release-hooks.js";
import type { InboxArrival, RelayInbox, ReleaseRelay } from "./release-hooks.js";

const log = createLogger({ name: "test.release-hooks", level: "silent" });
const id = (s: string): string => createHash("sha256").update(s).digest("hex");

/** An inbox over an array, with a cursor the assertions read. */
class ArrayInbox implements RelayInbox {
  cursor = 0;
  constructor(readonly entries: InboxArrival[]) {}
  inbox(after: number, limit: number) {
    return Promise.resolve(this.entries.filter((e) => e.seq > after).slice(0, limit));
  }
  applicationCursor() {
    return Promise.resolve(this.cursor);
  }
  advanceApplicationCursor(seq: number) {
    this.cursor = seq;
    return Promise.resolve();
  }
}

function entry(seq: number, content: string, kind: SegmentKind): InboxArrival {
  return { seq, segment: { id: id(content), size: content.length, kind }, from: "edge-b" };
}

function setup(activate: (bytes: Uint8Array) => Promise<unknown>, over: { activateRelayed?: boolean; relayActivated?: boolean } = {}) {
  const config = testEdgeConfig("/x/edge.toml", "/x/state");
  config.relay = { ...config.relay, activateRelayedReleases: over.activateRelayed ?? true, relayActivatedRelease: over.relayActivated ?? false };
  const contents = new Map([["rel-ok", "rel-ok"], ["data-1", "data-1"], ["rel-bad", "rel-bad"]].map(([k, v]) => [id(k ?? ""), new TextEncoder().encode(v)]));
  const activated: string[] = [];
  const enqueued: { kind: SegmentKind; bytes: Uint8Array }[] = [];
  let onRelease: ((p: { bytes: Uint8Array; statementDigest: string; sequence: number }) => Promise<void>) | undefined;
  const release: ReleaseRelay = {
    watchActiveRelease: (o) => {
      onRelease = o.onRelease;
      return { stop: () => Promise.resolve() };
    },
    activateRelayedRelease: async (o) => {
      await activate(o.bytes);
      activated.push(Buffer.from(o.bytes).toString());
    },
  };
  const store = { get: (sid: string) => Promise.resolve(contents.get(sid) ?? new Uint8Array()) };
  const engine = { enqueue: (bytes: Uint8Array, kind: SegmentKind) => {
    enqueued.push({ kind, bytes });
    return Promise.resolve({ id: createHash("sha256").update(bytes).digest("hex"), size: bytes.byteLength, kind, created: true });
  } };
  return { config, release, store, engine, activated, enqueued, onRelease: () => onRelease };
}

describe("release hooks", () => {
  it("activates relayed releases from the inbox in order and advances the application cursor past data and releases", async () => {
    const s = setup(() => Promise.resolve());
    const inbox = new ArrayInbox([entry(1, "rel-ok", "release"), entry(2, "data-1", "data")]);
    const hooks = startReleaseHooks({ ...s, inbox, log, intervalMs: 60_000 });
    await hooks.drain();
    expect(s.activated).toEqual(["rel-ok"]);
    expect(inbox.cursor).toBe(2);
    await hooks.stop();
  });

  it("a release refused by this node's rules (verification) is final: logged, the cursor moves on", async () => {
    const s = setup((b) => (Buffer.from(b).toString() === "rel-bad" ? Promise.reject(new EdgeError("RELAYED_RELEASE_INVALID", "tampered")) : Promise.resolve()));
    const inbox = new ArrayInbox([entry(1, "rel-bad", "release"), entry(2, "rel-ok", "release")]);
    const hooks = startReleaseHooks({ ...s, inbox, log, intervalMs: 60_000 });
    await hooks.drain();
    expect(s.activated).toEqual(["rel-ok"]);
    expect(inbox.cursor).toBe(2);
    await hooks.stop();
  });

  it("a release that keeps failing (not a verdict) is passed after MAX_RELEASE_ATTEMPTS drains, so later arrivals apply", async () => {
    const s = setup((b) => (Buffer.from(b).toString() === "rel-bad" ? Promise.reject(new Error("EIO")) : Promise.resolve()));
    const inbox = new ArrayInbox([entry(1, "rel-bad", "release"), entry(2, "rel-ok", "release")]);
    const hooks = startReleaseHooks({ ...s, inbox, log, intervalMs: 60_000 });
    for (let i = 1; i < MAX_RELEASE_ATTEMPTS; i++) await hooks.drain();
    expect(inbox.cursor).toBe(0);
    await hooks.drain();
    expect(s.activated).toEqual(["rel-ok"]);
    expect(inbox.cursor).toBe(2);
    await hooks.stop();
  });

  it("a transient failure (not a verdict) keeps the cursor before the release, so it is tried again", async () => {
    let fail = true;
    const s = setup(() => (fail ? Promise.reject(new Error("EBUSY")) : Promise.resolve()));
    const inbox = new ArrayInbox([entry(1, "data-1", "data"), entry(2, "rel-ok", "release")]);
    const hooks = startReleaseHooks({ ...s, inbox, log, intervalMs: 60_000 });
    await hooks.drain();
    expect(inbox.cursor).toBe(1);
    fail = false;
    await hooks.drain();
    expect(s.activated).toEqual(["rel-ok"]);
    expect(inbox.cursor).toBe(2);
    await hooks.stop();
  });

  it("with activate_relayed_releases off nothing is activated (the cursor still advances)", async () => {
    const s = setup(() => Promise.resolve(), { activateRelayed: false });
    const inbox = new ArrayInbox([entry(1, "rel-ok", "release")]);
    const hooks = startReleaseHooks({ ...s, inbox, log, intervalMs: 60_000 });
    await hooks.drain();
    expect(s.activated).toEqual([]);
    expect(inbox.cursor).toBe(1);
    await hooks.stop();
  });

  it("with relay_activated_release on, a newly active release is enqueued as a release segment", async () => {
    const s = setup(() => Promise.resolve(), { relayActivated: true });
    const hooks = startReleaseHooks({ ...s, inbox: new ArrayInbox([]), log, intervalMs: 60_000 });
    await s.onRelease()?.({ bytes: new TextEncoder().encode("packed"), statementDigest: "sha256:x", sequence: 3 });
    expect(s.enqueued.map((e) => e.kind)).toEqual(["release"]);
    await hooks.stop();
    const off = setup(() => Promise.resolve(), { relayActivated: false });
    const h2 = startReleaseHooks({ ...off, inbox: new ArrayInbox([]), log, intervalMs: 60_000 });
    expect(off.onRelease()).toBeUndefined();
    await h2.stop();
  });
});
