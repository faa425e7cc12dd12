import { describe, expect, it } from "vitest";
import { createHash } from "node:crypto";
import { hashToken, newSecret } from "./secrets.js";

describe("hashToken", () => {
  it("is SHA-256 in hex of the UTF-8 string (the form stored tokens were hashed in)", () => {
    expect(hashToken("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const s = newSecret("aon");
    expect(s.hash).toBe(createHash("sha256").update(s.token, "utf8").digest("hex"));
    expect(hashToken("é")).toBe(createHash("sha256").update(Buffer.from("é", "utf8")).digest("hex"));
  });
});
