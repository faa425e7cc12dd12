/**
 * The relay labs' own pieces, without edged: the edge.toml they write is one
 * the real loader accepts (with the lab's settings), and the judges the
 * suites use fail on doctored observations (a check that cannot fail is a defect).
 */
import { describe, expect, it } from "vitest";
import { parseEdgeConfig } from "../../src/edge/index.js";
import { inboxProblems, monotonicityViolations, seededSegments, ZERO_QUEUE } from "../../src/proofs/edge/common.js";
import { LAB_DEFAULTS, renderToml } from "../../src/proofs/edge/lab.js";

describe("relay lab edge.toml", () => {
  it("is accepted by the real loader with the lab's settings and a suite's overrides", () => {
    const text = renderToml("lab-a", "/tmp/lab/a/state", "/tmp/lab/certs", "127.0.0.1:7443", [{ id: "lab-b", address: "127.0.0.1:7444" }], {
      ...LAB_DEFAULTS, storage: { ceiling_bytes: 2560 }, bandwidth: { bytes_per_second: 32768 },
    });
    const cfg = parseEdgeConfig("/tmp/lab/a/edge.toml", text);
    expect(cfg.node).toEqual({ id: "lab-a", stateRoot: "/tmp/lab/a/state" });
    expect(cfg.transport).toMatchObject({ certFile: "/tmp/lab/certs/lab-a.crt", caFile: "/tmp/lab/certs/ca.crt", listen: "127.0.0.1:7443" });
    expect(cfg.relay).toMatchObject({ dialTimeoutMs: 2000, relayActivatedRelease: false, retry: { maxRetry: 3, backoffInitialMs: 50 } });
    expect(cfg.scheduler.intervalMs).toBe(100);
    expect(cfg.storage.ceilingBytes).toBe(2560);
    expect(cfg.bandwidth.bytes_per_second).toBe(32768);
    expect(cfg.peers).toEqual([{ id: "lab-b", address: "127.0.0.1:7444" }]);
  });
});

describe("relay suite judges", () => {
  const q = (acked: number, total: number, scheduled = total - acked) => ({ ...ZERO_QUEUE, acked, scheduled, total });

  it("queue monotonicity: acked going down, the total changing, or states not adding up are violations", () => {
    expect(monotonicityViolations([q(0, 10), q(4, 10), q(10, 10)], 10)).toEqual([]);
    expect(monotonicityViolations([q(0, 10), q(5, 10), q(4, 10)], 10)).toEqual(["sample 2: acked 5 → 4"]);
    expect(monotonicityViolations([q(0, 10), q(3, 9)], 10)[0]).toBe("sample 1: total 9 ≠ 10");
    expect(monotonicityViolations([{ ...q(2, 10), scheduled: 1 }], 10)).toEqual(["sample 0: states sum to 3, total says 10"]);
  });

  it("inbox problems: a missing segment, one delivered twice, one never sent", () => {
    expect(inboxProblems(["a", "b"], [{ segment_id: "a" }, { segment_id: "b" }])).toEqual({ missing: 0, twice: 0, foreign: 0 });
    expect(inboxProblems(["a", "b"], [{ segment_id: "a" }, { segment_id: "a" }, { segment_id: "c" }])).toEqual({ missing: 1, twice: 1, foreign: 1 });
  });

  it("seeded segments are distinct, sized, and the same for the same seed", () => {
    const a = seededSegments(7, 50, 64);
    expect(new Set(a.map((b) => b.toString("hex"))).size).toBe(50);
    expect(a.every((b) => b.length === 64)).toBe(true);
    expect(seededSegments(7, 50, 64)).toEqual(a);
    expect(seededSegments(8, 1, 64)[0]).not.toEqual(a[0]);
  });
});
