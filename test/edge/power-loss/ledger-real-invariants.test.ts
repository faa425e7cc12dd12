import { describe, expect, it } from "vitest";
import { ledgerViolations } from "./ledger-real-invariants.js";

const ok = { segments: ["s1"], deliveries: [["s1", "peer-a", "acked"], ["s1", "peer-b", "scheduled"]] as [string, string, string][], inbox: [[1, "r1"], [2, "r2"]] as [number, string][], cursor: 1 };
const acks = ["open", "schedule s1", "begin s1 peer-a", "acked s1 peer-a", "recv r1 1 new", "recv r2 2 new", "recv r1 1 dup", "cursor 1"];

describe("ledgerViolations (what a recovered ledger must satisfy)", () => {
  it("accepts a ledger that kept everything acknowledged", () => {
    expect(ledgerViolations(acks, ok)).toEqual([]);
  });
  it("flags each kind of loss, a duplicate inbox entry, a cursor gone back, a half-applied schedule", () => {
    expect(ledgerViolations(acks, { ...ok, segments: [] })).toEqual(["acknowledged schedule of s1 lost"]);
    expect(ledgerViolations(acks, { ...ok, deliveries: [["s1", "peer-a", "inflight"], ["s1", "peer-b", "scheduled"]] })).toEqual(["acknowledged delivery of s1 to peer-a is inflight, not acked"]);
    expect(ledgerViolations(acks, { ...ok, inbox: [[1, "r1"]] })[0]).toMatch(/receipt of r2 as inbox #2 lost/);
    expect(ledgerViolations(acks, { ...ok, inbox: [[1, "r1"], [2, "r2"], [3, "r1"]] })).toEqual(["segment r1 is in the inbox 2 times (#1, #3): the application would get it twice"]);
    expect(ledgerViolations(acks, { ...ok, cursor: 0 })[0]).toMatch(/cursor went back from the acknowledged 1 to 0/);
    expect(ledgerViolations(["schedule s1"], { ...ok, deliveries: [["s1", "peer-a", "scheduled"]] })).toContain("acknowledged schedule of s1: delivery to peer-b lost (schedule applied in part?)");
  });
});
