import { describe, expect, it } from "vitest";
import { certIdentity, peerCertIdentity, x509Identity } from "./identity.js";

describe("certIdentity: one certificate, one node, its CN", () => {
  it("is the CN, whatever the SANs say, as either side of a TLS link reads it", () => {
    expect(certIdentity(["edge-a"])).toEqual({ ok: true, id: "edge-a" });
    expect(x509Identity({ subject: "O=x\nCN=edge-a" })).toEqual({ ok: true, id: "edge-a" });
    expect(peerCertIdentity({ subject: { CN: "edge-a" } })).toEqual({ ok: true, id: "edge-a" });
  });
  it("refuses zero or two CNs", () => {
    expect(certIdentity([]).ok).toBe(false);
    expect(x509Identity({ subject: "CN=edge-a\nCN=edge-b" }).ok).toBe(false);
    expect(peerCertIdentity({ subject: { CN: ["edge-a", "edge-b"] } }).ok).toBe(false);
    expect(peerCertIdentity({}).ok).toBe(false);
  });
});
