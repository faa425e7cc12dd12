import { describe, expect, it } from "vitest";
import { MAX_REFUSALS, RefusalLog, isTlsRefusalCode, tlsRefusalReason } from "./refusals.js";

describe("RefusalLog", () => {
  it("aggregates per direction, peer and reason with a count and the last time and detail, newest first", () => {
    let now = Date.parse("2026-12-06T00:00:00Z");
    const seen: string[] = [];
    const log = new RefusalLog({ clock: { now: () => now }, onRefused: (r) => seen.push(`${r.peer}:${r.reason}:${r.count}`) });
    log.record("inbound", "10.0.0.1", "UNKNOWN_CA", "first");
    now += 1000;
    log.record("inbound", "10.0.0.2", "CERT_EXPIRED", "other");
    now += 1000;
    log.record("inbound", "10.0.0.1", "UNKNOWN_CA", "second");
    log.record("outbound", "10.0.0.1", "UNKNOWN_CA", "same peer, other direction");
    expect(log.list()).toEqual([
      { direction: "outbound", peer: "10.0.0.1", reason: "UNKNOWN_CA", detail: "same peer, other direction", at: "2026-12-06T00:00:02.000Z", count: 1 },
      { direction: "inbound", peer: "10.0.0.1", reason: "UNKNOWN_CA", detail: "second", at: "2026-12-06T00:00:02.000Z", count: 2 },
      { direction: "inbound", peer: "10.0.0.2", reason: "CERT_EXPIRED", detail: "other", at: "2026-12-06T00:00:01.000Z", count: 1 },
    ]);
    expect(seen).toEqual(["10.0.0.1:UNKNOWN_CA:1", "10.0.0.2:CERT_EXPIRED:1", "10.0.0.1:UNKNOWN_CA:2", "10.0.0.1:UNKNOWN_CA:1"]);
  });

  it("stays bounded: a scan from many addresses keeps only the most recently seen entries", () => {
    const log = new RefusalLog();
    log.record("inbound", "keep-me", "NO_CERTIFICATE", "x");
    for (let i = 0; i < MAX_REFUSALS * 3; i++) {
      log.record("inbound", `10.1.${i >> 8}.${i & 255}`, "TLS_ERROR", "scan");
      if (i % 10 === 0) log.record("inbound", "keep-me", "NO_CERTIFICATE", "x");
    }
    const list = log.list();
    expect(list).toHaveLength(MAX_REFUSALS);
    expect(list.find((r) => r.peer === "keep-me")?.count).toBe(1 + Math.ceil((MAX_REFUSALS * 3) / 10));
    expect(list.some((r) => r.peer === "10.1.0.0")).toBe(false);
  });

  it("maps Node's verification codes and OpenSSL's alerts onto refusal reasons", () => {
    expect(tlsRefusalReason("UNABLE_TO_VERIFY_LEAF_SIGNATURE")).toBe("UNKNOWN_CA");
    expect(tlsRefusalReason("ERR_SSL_TLSV1_ALERT_UNKNOWN_CA")).toBe("UNKNOWN_CA");
    expect(tlsRefusalReason("CERT_HAS_EXPIRED")).toBe("CERT_EXPIRED");
    expect(tlsRefusalReason("CERT_NOT_YET_VALID")).toBe("CERT_NOT_YET_VALID");
    expect(tlsRefusalReason("ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE")).toBe("NO_CERTIFICATE");
    expect(tlsRefusalReason("ERR_TLS_CERT_ALTNAME_INVALID")).toBe("NAME_MISMATCH");
    expect(tlsRefusalReason("ECONNRESET")).toBe("TLS_ERROR");
    expect(isTlsRefusalCode("ECONNREFUSED")).toBe(false);
    expect(isTlsRefusalCode("ERR_SSL_WRONG_VERSION_NUMBER")).toBe(true);
  });
});
