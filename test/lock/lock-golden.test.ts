// Golden gate: a checked-in lock must keep its checked-in fingerprint, which was computed once
// with the reference tool b3sum (see test/fixtures/lock/README.md). A failure means our
// canonicalisation or hashing drifted, and every lock in the field would stop verifying.
import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { computeFingerprint, fingerprintPayload, parseLock, serializeLock, verifyLock } from "../../src/lock/index.js";

const fixture = (name: string) => new URL(`../fixtures/lock/${name}`, import.meta.url);

describe("golden lock", () => {
  it("canonicalises to the checked-in payload byte for byte", async () => {
    const lock = parseLock(await readFile(fixture("golden.lock.json")));
    expect(fingerprintPayload(lock)).toBe(await readFile(fixture("golden.payload.json"), "utf8"));
  });

  it("fingerprints to the value b3sum computed, which is also the lock's own field", async () => {
    const expected = (await readFile(fixture("golden.fingerprint"), "utf8")).trim();
    expect(expected).toMatch(/^blake3:[a-f0-9]{64}$/);
    const lock = parseLock(await readFile(fixture("golden.lock.json")));
    expect(await computeFingerprint(lock)).toBe(expected);
    expect(lock.behavioral_fingerprint).toBe(expected);
    await verifyLock(lock);
  });

  it("keeps its fingerprint through serializeLock", async () => {
    const lock = parseLock(await readFile(fixture("golden.lock.json")));
    const again = parseLock(serializeLock(lock));
    expect(await computeFingerprint(again)).toBe(lock.behavioral_fingerprint);
  });
});
