import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SignError } from "./errors.js";
import { buildSimpleSigningPayload, parseSimpleSigningPayload } from "./payload.js";

const DIGEST = `sha256:${"ab".repeat(32)}`;
const AT = new Date("2025-03-04T05:06:07.890Z");
const utf8 = (s: string) => Buffer.from(s, "utf8");

function caught(fn: () => unknown): SignError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(SignError);
    return e as SignError;
  }
  throw new Error("expected a throw");
}

/** The JSON shape of a payload, loose enough for tests to break it on purpose. */
interface PayloadJson {
  critical: { identity: Record<string, unknown>; image: Record<string, unknown>; type: unknown; [k: string]: unknown };
  optional: unknown;
  [k: string]: unknown;
}

const valid = () =>
  JSON.parse(
    Buffer.from(buildSimpleSigningPayload({ dockerReference: "reg.example/agent", manifestDigest: DIGEST, signedAt: AT })).toString(),
  ) as PayloadJson;

describe("#buildSimpleSigningPayload", () => {
  it("writes cosign's layout with the signed-at time in optional", () => {
    const bytes = buildSimpleSigningPayload({
      dockerReference: "reg.example/agent",
      manifestDigest: DIGEST,
      signedAt: AT,
      extra: { "release": "rel-004" },
    });
    expect(Buffer.from(bytes).toString("utf8")).toBe(
      `{"critical":{"identity":{"docker-reference":"reg.example/agent"},"image":{"docker-manifest-digest":"${DIGEST}"},` +
        `"type":"cosign container image signature"},"optional":{"autonomy.signed-at":"2025-03-04T05:06:07Z","release":"rel-004"}}`,
    );
  });

  describe("when an option is invalid", () => {
    it.each([
      ["an empty reference", { dockerReference: "" }],
      ["an uppercase digest", { manifestDigest: DIGEST.toUpperCase() }],
      ["a sha512 digest", { manifestDigest: `sha512:${"a".repeat(128)}` }],
      ["an invalid date", { signedAt: new Date(NaN) }],
      ["a 5-digit year", { signedAt: new Date("+010000-01-01T00:00:00Z") }],
      ["an extra signed-at", { extra: { "autonomy.signed-at": "2000-01-01T00:00:00Z" } }],
    ])("throws PAYLOAD_INVALID for %s", (_n, patch) => {
      const e = caught(() =>
        buildSimpleSigningPayload({ dockerReference: "r/a", manifestDigest: DIGEST, signedAt: AT, ...patch }),
      );
      expect(e.code).toBe("PAYLOAD_INVALID");
    });
  });
});

describe("#parseSimpleSigningPayload", () => {
  it("round-trips what build writes", () => {
    const bytes = buildSimpleSigningPayload({ dockerReference: "r/a", manifestDigest: DIGEST, signedAt: AT, extra: { k: "v" } });
    expect(parseSimpleSigningPayload(bytes)).toEqual({
      dockerReference: "r/a",
      manifestDigest: DIGEST,
      signedAt: "2025-03-04T05:06:07Z",
      optional: { "autonomy.signed-at": "2025-03-04T05:06:07Z", k: "v" },
    });
  });

  it("accepts cosign's own payload with optional null and no signed-at", () => {
    const cosign =
      `{"critical":{"identity":{"docker-reference":"localhost:5000/agent"},"image":{"docker-manifest-digest":"${DIGEST}"},` +
      `"type":"cosign container image signature"},"optional":null}`;
    expect(parseSimpleSigningPayload(utf8(cosign))).toMatchObject({ signedAt: undefined, optional: {} });
  });

  it("keeps a __proto__ annotation as plain data", () => {
    const p = valid();
    const text = JSON.stringify(p).replace('"optional":{', '"optional":{"__proto__":{"polluted":true},');
    const parsed = parseSimpleSigningPayload(utf8(text));
    expect(Object.hasOwn(parsed.optional, "__proto__")).toBe(true);
    expect((parsed.optional as { polluted?: unknown }).polluted).toBeUndefined();
  });

  describe("when the payload is malformed", () => {
    const mutate = (f: (p: PayloadJson) => void) => {
      const p = valid();
      f(p);
      return utf8(JSON.stringify(p));
    };
    it.each([
      ["not UTF-8", new Uint8Array([0xc3, 0x28])],
      ["not JSON", utf8("{")],
      ["an array", utf8("[]")],
      ["wrong type", mutate((p) => (p.critical.type = "cosign container image signature "))],
      ["a bad digest", mutate((p) => (p.critical.image["docker-manifest-digest"] = "sha256:00"))],
      ["an empty reference", mutate((p) => (p.critical.identity["docker-reference"] = ""))],
      ["an unknown critical field", mutate((p) => (p.critical.extra = 1))],
      ["an unknown top-level field", mutate((p) => (p.extra = 1))],
      ["no critical", mutate((p) => delete (p as Partial<PayloadJson>).critical)],
      ["optional as an array", mutate((p) => (p.optional = []))],
      ["a numeric signed-at", mutate((p) => ((p.optional as Record<string, unknown>)["autonomy.signed-at"] = 5))],
    ])("throws PAYLOAD_INVALID for %s", (_n, bytes) => {
      expect(caught(() => parseSimpleSigningPayload(bytes)).code).toBe("PAYLOAD_INVALID");
    });

    it("names every bad field", () => {
      const bytes = mutate((p) => {
        p.critical.type = "x";
        p.critical.image["docker-manifest-digest"] = "y";
        p.z = 1;
      });
      expect(caught(() => parseSimpleSigningPayload(bytes)).details.fields).toEqual(
        expect.arrayContaining(["critical.type", 'critical.image["docker-manifest-digest"]', "z"]),
      );
    });
  });

  it("throws only SignError on arbitrary input", () => {
    const arb = fc.oneof(
      fc.uint8Array(),
      fc.string({ unit: "binary" }).map(utf8),
      fc.json().map(utf8),
      fc.anything().map((v) => utf8(JSON.stringify(v) ?? "null")),
      fc
        .record({ path: fc.constantFrom("critical", "optional", "x"), value: fc.anything() })
        .map(({ path, value }) => utf8(JSON.stringify({ ...valid(), [path]: value }))),
    );
    fc.assert(
      fc.property(arb, (bytes) => {
        try {
          parseSimpleSigningPayload(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(SignError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
