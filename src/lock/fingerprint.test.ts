import fc from "fast-check";
import { blake3 } from "hash-wasm";
import { describe, expect, it } from "vitest";
import { arbLockOptions } from "../../test/fixtures/lock/arbitraries.js";
import { LockError } from "./errors.js";
import { canonicalJson, computeFingerprint, fingerprintPayload } from "./fingerprint.js";
import { createLock, parseLock } from "./lock.js";
import type { ActivationLock } from "./schema.js";
import { caught } from "../../test/helpers/caught.js";


/** Re-serialises a JSON value with every object's keys in a new order chosen by `order`. */
function reorder(v: unknown, order: (keys: string[]) => string[]): unknown {
  if (Array.isArray(v)) return v.map((x) => reorder(x, order));
  if (v === null || typeof v !== "object") return v;
  const rec = v as Record<string, unknown>;
  return Object.fromEntries(order(Object.keys(rec)).map((k) => [k, reorder(rec[k], order)]));
}

describe("#canonicalJson", () => {
  it("sorts keys by UTF-16 code units (RFC 8785 §3.2.3 example)", () => {
    const input = JSON.parse(
      '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One",' +
        '"\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}',
    ) as unknown;
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis",' +
        '"\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it("formats numbers, strings and literals as RFC 8785 §3.2.2.3 shows", () => {
    const input =
      '{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],' +
      '"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}';
    expect(canonicalJson(JSON.parse(input))).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],' +
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it("writes -0 as 0 and drops undefined properties, as JSON does", () => {
    expect(canonicalJson({ b: -0, a: undefined })).toBe('{"b":0}');
  });

  describe("when the value is not plain JSON data", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    let deep: unknown = 1;
    for (let i = 0; i < 100; i++) deep = [deep];
    it.each([
      ["NaN", { a: NaN }],
      ["Infinity", [Infinity]],
      ["-Infinity", -Infinity],
      ["a BigInt", { a: 1n }],
      ["a function", { a: () => 1 }],
      ["a symbol", { a: Symbol("s") }],
      ["a Date", { a: new Date(0) }],
      ["a Map", new Map()],
      ["a lone surrogate", { a: "x\ud800" }],
      ["a lone surrogate key", { ["\udc00"]: 1 }],
      ["undefined", undefined],
      ["undefined in an array", [1, undefined]],
      ["a cycle", cyclic],
      ["deep nesting", deep],
    ])("throws LOCK_NOT_CANONICALIZABLE for %s", (_name, value) => {
      const e = caught(() => canonicalJson(value));
      expect(e).toBeInstanceOf(LockError);
      expect(e).toMatchObject({ code: "LOCK_NOT_CANONICALIZABLE" });
    });
  });

  it("accepts the same object twice when it is not a cycle", () => {
    const shared = { x: 1 };
    expect(canonicalJson({ a: shared, b: shared })).toBe('{"a":{"x":1},"b":{"x":1}}');
  });
});

describe("#computeFingerprint", () => {
  it("is blake3: + BLAKE3-256 of the canonical payload, ignoring any existing fingerprint", async () => {
    const lock = await createLock({
      agentImageRef: "reg.example/agent:1",
      agentDigest: `sha256:${"a".repeat(64)}`,
      policyBundleRef: "reg.example/policy:1",
      policyBundleDigest: `sha256:${"b".repeat(64)}`,
    });
    const payload = fingerprintPayload(lock);
    expect(payload).not.toContain("behavioral_fingerprint");
    expect(payload.startsWith('{"agent_artifact":{"digest":')).toBe(true);
    const expected = `blake3:${await blake3(payload, 256)}`;
    expect(await computeFingerprint(lock)).toBe(expected);
    expect(await computeFingerprint({ ...lock, behavioral_fingerprint: "anything" })).toBe(expected);
    expect(lock.behavioral_fingerprint).toBe(expected);
  });

  it("never changes with the key order or whitespace of the lock's JSON", async () => {
    const arbLayout = fc.record({
      seed: fc.integer(),
      indent: fc.stringMatching(/^[ \t\n\r]{0,10}$/),
    });
    await fc.assert(
      fc.asyncProperty(arbLockOptions, arbLayout, async (opts, { seed, indent }) => {
        const lock = await createLock(opts);
        // A seeded shuffle so the same case always produces the same layout.
        const order = (keys: string[]) =>
          keys
            .map((k, i) => ({ k, r: Math.sin(seed + i * 7919) }))
            .sort((a, b) => a.r - b.r)
            .map((x) => x.k);
        const text = JSON.stringify(reorder(lock, order), null, indent);
        const reparsed = parseLock(`${indent}${text}${indent}`);
        expect(await computeFingerprint(reparsed)).toBe(lock.behavioral_fingerprint);
      }),
      { numRuns: 200 },
    );
  });

  it("changes when any field value changes", async () => {
    type Edit = (l: ActivationLock, v: string) => ActivationLock;
    const edits: Record<string, Edit> = {
      agentRef: (l, v) => ({ ...l, agent_artifact: { ...l.agent_artifact, ref: v } }),
      agentDigest: (l, v) => ({ ...l, agent_artifact: { ...l.agent_artifact, digest: v } }),
      policyRef: (l, v) => ({ ...l, policy_bundle: { ...l.policy_bundle, ref: v } }),
      policyDigest: (l, v) => ({ ...l, policy_bundle: { ...l.policy_bundle, digest: v } }),
      promptHash: (l, v) => ({ ...l, inputs: { ...l.inputs, prompt_hash: v } }),
      toolInputsHash: (l, v) => ({ ...l, inputs: { ...l.inputs, tool_inputs_hash: v } }),
      schemaVersion: (l, v) => ({ ...l, schema_version: v as "v0" }),
    };
    const get: Record<string, (l: ActivationLock) => string | undefined> = {
      agentRef: (l) => l.agent_artifact.ref,
      agentDigest: (l) => l.agent_artifact.digest,
      policyRef: (l) => l.policy_bundle.ref,
      policyDigest: (l) => l.policy_bundle.digest,
      promptHash: (l) => l.inputs.prompt_hash,
      toolInputsHash: (l) => l.inputs.tool_inputs_hash,
      schemaVersion: (l) => l.schema_version,
    };
    await fc.assert(
      fc.asyncProperty(
        arbLockOptions,
        fc.constantFrom(...Object.keys(edits)),
        fc.string({ unit: "grapheme", maxLength: 80 }),
        async (opts, field, value) => {
          const lock = await createLock(opts);
          fc.pre(get[field]!(lock) !== value);
          const changed = edits[field]!(lock, value);
          expect(await computeFingerprint(changed)).not.toBe(lock.behavioral_fingerprint);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("changes when an optional input hash is removed", async () => {
    await fc.assert(
      fc.asyncProperty(arbLockOptions, async (opts) => {
        const lock = await createLock(opts);
        fc.pre(Object.keys(lock.inputs).length > 0);
        expect(await computeFingerprint({ ...lock, inputs: {} })).not.toBe(lock.behavioral_fingerprint);
      }),
      { numRuns: 100 },
    );
  });
});
