import { describe, expect, it } from "vitest";
import { assignFaults, checkServer, corruptEnvelope, isLoopback, parseFaults, parseLabels, runFleet } from "./index.js";
import { trustedKeys } from "../supplychain/index.js";
import { testKeys } from "../../test/helpers/release.js";
import { Traffic, percentile } from "./stats.js";
import { CpClientError } from "../cpapi/index.js";

describe("fleet simulator: flags, fault assignment, bounds", () => {
  it("parses --faults as percentages or fractions and refuses unknown kinds, repeats, and more than 100 % in all", () => {
    expect(parseFaults("fail=5%,hang=2%,corrupt=1%,misbehave=10%,offline=0.5%")).toEqual({ fail: 0.05, hang: 0.02, corrupt: 0.01, misbehave: 0.1, offline: 0.005 });
    expect(parseFaults("fail=0.25")).toEqual({ fail: 0.25 });
    expect(parseFaults("")).toEqual({});
    for (const bad of ["explode=5%", "fail=5%,fail=1%", "fail=60%,hang=50%", "fail", "fail=-1%", "fail=101%"]) {
      expect(() => parseFaults(bad), bad).toThrow(expect.objectContaining({ code: "FLEET_SPEC_INVALID" }));
    }
    expect(parseLabels(["site=lab", "tier=edge"])).toEqual({ site: "lab", tier: "edge" });
    expect(() => parseLabels(["nolabel"])).toThrow(expect.objectContaining({ code: "FLEET_SPEC_INVALID" }));
  });

  it("assigns exactly round(N × rate) devices per fault, at most one fault each, the same for the same seed", () => {
    const rates = { fail: 0.05, hang: 0.02, corrupt: 0.01, misbehave: 0.1, offline: 0.03 };
    const a = assignFaults(1000, rates, 99);
    const count = (k: string): number => a.filter((f) => f === k).length;
    expect([count("fail"), count("hang"), count("corrupt"), count("misbehave"), count("offline"), a.filter((f) => f === null).length]).toEqual([50, 20, 10, 100, 30, 790]);
    expect(assignFaults(1000, rates, 99)).toEqual(a);
    expect(assignFaults(1000, rates, 100)).not.toEqual(a);
    // Spread over the fleet, not the first indices.
    expect(a.slice(0, 210).filter((f) => f !== null).length).toBeLessThan(150);
  });

  it("only a loopback --server is accepted unless --allow-remote", () => {
    for (const h of ["localhost", "127.0.0.1", "127.8.9.10", "[::1]", "a.localhost"]) expect(isLoopback(h.replace(/^\[|\]$/g, "")), h).toBe(true);
    for (const h of ["192.0.2.1", "10.0.0.1", "example.com", "localhost.example.com", "::2"]) expect(isLoopback(h), h).toBe(false);
    expect(() => checkServer("http://[::1]:8888", false)).not.toThrow();
    expect(() => checkServer("http://cp.example.com:8888", false)).toThrow(expect.objectContaining({ code: "FLEET_SERVER_NOT_LOOPBACK" }));
    expect(() => checkServer("http://cp.example.com:8888", true)).not.toThrow();
  });

  it("a corrupt envelope differs from the original in one payload character only", () => {
    const env = { payloadType: "application/vnd.in-toto+json", payload: Buffer.from("{\"hello\":\"world, a statement\"}").toString("base64"), signatures: [{ sig: "x" }] };
    const bad = corruptEnvelope(env);
    expect(bad.payload).not.toBe(env.payload);
    expect(bad.payload.length).toBe(env.payload.length);
    expect([...bad.payload].filter((c, i) => c !== env.payload[i])).toHaveLength(1);
    expect(bad.signatures).toEqual(env.signatures);
  });

  it("Traffic never has more than maxInflight requests in flight, and classifies failures by code", async () => {
    const t = new Traffic(3);
    let now = 0;
    let peak = 0;
    const work = Array.from({ length: 20 }, (_, i) => t.call("r", async () => {
      now += 1;
      peak = Math.max(peak, now);
      await new Promise((r) => setTimeout(r, 5));
      now -= 1;
      if (i === 0) throw new CpClientError("CP_REQUEST_FAILED", "no answer", { detail: "ECONNREFUSED" });
      if (i === 1) throw new CpClientError("CP_REQUEST_REJECTED", "refused", { status: 503, problemCode: "STORE_BUSY", detail: "busy" });
      return i;
    }).catch(() => -1));
    await Promise.all(work);
    expect(peak).toBe(3);
    expect(t.peakInflight).toBe(3);
    expect(t.total).toBe(20);
    expect(t.transportErrors).toBe(1);
    expect(Object.fromEntries(t.errors)).toEqual({ CP_REQUEST_FAILED: 1, "CP_REQUEST_REJECTED/STORE_BUSY": 1 });
    expect(t.summary().by_route.r).toMatchObject({ count: 20, errors: 2 });
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 50)).toBe(5);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 99)).toBe(10);
    expect(percentile([], 50)).toBeNull();
  });

  it("a trust set whose threshold can never be met is refused before anything is sent (FLEET_SPEC_INVALID)", async () => {
    const trust = { trusted: trustedKeys([testKeys().publicKey]), threshold: 2, repository: "r" };
    await expect(runFleet({
      devices: 1, server: "http://127.0.0.1:9", token: "x", channel: "stable", labels: {}, faults: {}, seed: 1, trust,
      durationMs: 1000, untilConverged: false, pollIntervalMs: 1000, maxInflight: 1, maxTransportErrorRate: 0, allowRemote: false,
    })).rejects.toMatchObject({ code: "FLEET_SPEC_INVALID" });
  });
});
