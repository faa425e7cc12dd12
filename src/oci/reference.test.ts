import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { formatReference, parseReference, referenceTarget } from "./reference.js";
import { OciError } from "./errors.js";

const D = `sha256:${"a".repeat(64)}`;

describe("parseReference", () => {
  it.each([
    ["oci:/tmp/x:v1", { kind: "layout", dir: "/tmp/x", tag: "v1" }],
    ["oci:/tmp/x", { kind: "layout", dir: "/tmp/x" }],
    [`oci:rel/dir@${D}`, { kind: "layout", dir: "rel/dir", digest: D }],
    ["127.0.0.1:5000/agent:1.0", { kind: "registry", registry: "127.0.0.1:5000", repository: "agent", tag: "1.0" }],
    [`localhost/a/b@${D}`, { kind: "registry", registry: "localhost", repository: "a/b", digest: D }],
    [`reg.example.com:443/team/agent:v2@${D}`, { kind: "registry", registry: "reg.example.com:443", repository: "team/agent", tag: "v2", digest: D }],
  ])("parses %s", (input, expected) => {
    expect(parseReference(input)).toEqual(expected);
  });

  describe("when the reference is malformed", () => {
    it.each(["", "agent", "127.0.0.1:5000/", "host/UPPER", "host/a:bad tag", "host/a@sha256:xyz", "host/a@md5:abc", "oci:", "host/a:-x", "h_st/a", "oci:/x\0y"])(
      "rejects %j with OCI_REFERENCE_INVALID",
      (input) => {
        expect(() => parseReference(input)).toThrow(OciError);
        try {
          parseReference(input);
        } catch (e) {
          expect((e as OciError).code).toBe("OCI_REFERENCE_INVALID");
          expect((e as OciError).hint.length).toBeGreaterThan(0);
        }
      },
    );
  });

  it("round-trips through formatReference", () => {
    for (const s of ["oci:/a/b:t", "127.0.0.1:5000/x/y:z", `h/r@${D}`, `h:1/r:t@${D}`]) {
      expect(formatReference(parseReference(s))).toBe(s);
    }
  });

  it("prefers the digest over the tag as the fetch target", () => {
    expect(referenceTarget(parseReference(`h/r:t@${D}`))).toBe(D);
    expect(referenceTarget(parseReference("h/r"))).toBe("latest");
  });

  it("never throws anything but OciError on arbitrary input (property)", () => {
    fc.assert(fc.property(fc.string({ maxLength: 300 }), (s) => {
      try {
        parseReference(s);
      } catch (e) {
        return e instanceof OciError && e.code === "OCI_REFERENCE_INVALID";
      }
      return true;
    }), { numRuns: 2000 });
  });
});
