import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { blake3 } from "hash-wasm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ExitCodes, UsageError } from "../lib/index.js";
import { arbLockOptions } from "../../test/fixtures/lock/arbitraries.js";
import { LockError } from "./errors.js";
import { createLock, hashInputFile, parseLock, serializeLock, verifyLock } from "./lock.js";
import type { ActivationLock } from "./schema.js";
import { caught } from "../../test/helpers/caught.js";

const A = `sha256:${"a".repeat(64)}`;
const B = `sha256:${"b".repeat(64)}`;
const baseOpts = { agentImageRef: "reg.example/agent:1", agentDigest: A, policyBundleRef: "reg.example/policy:1", policyBundleDigest: B };


async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

function expectLockError(e: unknown, code: string): LockError {
  expect(e).toBeInstanceOf(LockError);
  expect(e).toMatchObject({ code });
  return e as LockError;
}

describe("#createLock", () => {
  it("builds a v0 lock whose fingerprint verifies", async () => {
    const lock = await createLock({ ...baseOpts, promptHash: `blake3:${"c".repeat(64)}` });
    expect(lock).toMatchObject({
      schema_version: "v0",
      agent_artifact: { ref: "reg.example/agent:1", digest: A },
      policy_bundle: { ref: "reg.example/policy:1", digest: B },
      inputs: { prompt_hash: `blake3:${"c".repeat(64)}` },
    });
    expect(lock.behavioral_fingerprint).toMatch(/^blake3:[a-f0-9]{64}$/);
    await verifyLock(lock);
  });

  it("leaves absent input hashes out of the lock entirely", async () => {
    const lock = await createLock(baseOpts);
    expect(Object.keys(lock.inputs)).toEqual([]);
  });

  describe("when several options are invalid", () => {
    it("throws LOCK_SCHEMA_INVALID listing every bad field", async () => {
      const e = expectLockError(
        await rejection(createLock({ ...baseOpts, agentDigest: "sha256:XYZ", policyBundleRef: "", toolInputsHash: "md5:00" })),
        "LOCK_SCHEMA_INVALID",
      );
      expect(e.details.fields).toEqual(["agent_artifact.digest", "policy_bundle.ref", "inputs.tool_inputs_hash"]);
      for (const f of e.details.fields as string[]) expect(e.message).toContain(f);
    });
  });
});

describe("#parseLock", () => {
  let good: ActivationLock;
  beforeAll(async () => {
    good = await createLock({ ...baseOpts, toolInputsHash: `sha256:${"d".repeat(64)}` });
  });
  const withFields = (patch: Record<string, unknown>) => JSON.stringify({ ...good, ...patch });

  it("returns the lock from a string or from UTF-8 bytes (BOM allowed)", () => {
    const text = serializeLock(good);
    expect(parseLock(text)).toEqual(good);
    expect(parseLock(Buffer.from(`\ufeff${text}`))).toEqual(good);
  });

  describe("when the input is not a JSON object", () => {
    it.each([
      ["not JSON", "{"],
      ["empty", ""],
      ["an array", "[]"],
      ["null", "null"],
      ["a number", "42"],
      ["a string", '"lock"'],
    ])("throws LOCK_PARSE_FAILED for %s", (_n, text) => {
      expectLockError(caught(() => parseLock(text)), "LOCK_PARSE_FAILED");
    });

    it("throws LOCK_PARSE_FAILED for invalid UTF-8", () => {
      expectLockError(caught(() => parseLock(new Uint8Array([0x7b, 0xff, 0x7d]))), "LOCK_PARSE_FAILED");
    });
  });

  describe("when fields are unknown, missing or malformed", () => {
    it("throws LOCK_SCHEMA_INVALID with every field path", () => {
      const text = JSON.stringify({
        schema_version: "v1",
        agent_artifact: { ref: "r", digest: A, extra: 1 },
        policy_bundle: { ref: 7 },
        inputs: { "odd key": true },
        behavioral_fingerprint: "sha256:00",
        __proto__x: 1,
      });
      const e = expectLockError(caught(() => parseLock(text)), "LOCK_SCHEMA_INVALID");
      expect([...(e.details.fields as string[])].sort()).toEqual([
        "__proto__x",
        "agent_artifact.extra",
        "behavioral_fingerprint",
        'inputs["odd key"]',
        "policy_bundle.digest",
        "policy_bundle.ref",
        "schema_version",
      ]);
    });

    it("rejects a __proto__ key as an unknown field", () => {
      const e = expectLockError(caught(() => parseLock(withFields({}).replace(/^\{/, '{"__proto__":{},'))), "LOCK_SCHEMA_INVALID");
      expect(e.details.fields).toEqual(["__proto__"]);
    });

    it("throws LOCK_SCHEMA_INVALID when the fingerprint is missing", () => {
      const { behavioral_fingerprint: _f, ...rest } = good;
      const e = expectLockError(caught(() => parseLock(JSON.stringify(rest))), "LOCK_SCHEMA_INVALID");
      expect(e.details.fields).toEqual(["behavioral_fingerprint"]);
    });
  });

  describe("when only the fingerprint is malformed", () => {
    it.each([
      ["a sha256 value", `sha256:${"a".repeat(64)}`],
      ["raw hex", "a".repeat(64)],
      ["uppercase hex", `blake3:${"A".repeat(64)}`],
      ["short hex", `blake3:${"a".repeat(63)}`],
      ["a number", 5],
    ])("throws LOCK_FINGERPRINT_FORMAT for %s (no SHA-256 fallback)", (_n, fp) => {
      expectLockError(caught(() => parseLock(withFields({ behavioral_fingerprint: fp }))), "LOCK_FINGERPRINT_FORMAT");
    });
  });

  it("never throws anything but LockError", () => {
    const asText = fc.oneof(
      fc.string({ unit: "binary" }),
      fc.json(),
      fc.anything().map((v) => JSON.stringify(v) ?? "undefined"),
      // Mutations of a valid lock reach deeper into the schema than random text does.
      fc.record({ key: fc.constantFrom(...Object.keys(good), "x"), value: fc.anything() }).map(({ key, value }) =>
        JSON.stringify({ ...good, [key]: value }),
      ),
    );
    fc.assert(
      fc.property(asText, (text) => {
        try {
          parseLock(text);
        } catch (e) {
          expect(e).toBeInstanceOf(LockError);
        }
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.uint8Array(), (bytes) => {
        try {
          parseLock(bytes);
        } catch (e) {
          expect(e).toBeInstanceOf(LockError);
        }
      }),
    );
  });
});

describe("#verifyLock", () => {
  it("accepts every lock createLock makes", async () => {
    await fc.assert(fc.asyncProperty(arbLockOptions, async (o) => verifyLock(parseLock(serializeLock(await createLock(o))))));
  });

  describe("when the content was changed after fingerprinting", () => {
    it("throws LOCK_FINGERPRINT_MISMATCH (exit 4) with expected and actual", async () => {
      const lock = await createLock(baseOpts);
      const tampered = { ...lock, agent_artifact: { ...lock.agent_artifact, digest: B } };
      const e = expectLockError(await rejection(verifyLock(tampered)), "LOCK_FINGERPRINT_MISMATCH");
      expect(e.exitCode).toBe(ExitCodes.verification);
      expect(e.details.expected).toBe(lock.behavioral_fingerprint);
      expect(e.details.actual).toMatch(/^blake3:[a-f0-9]{64}$/);
      expect(e.details.actual).not.toBe(lock.behavioral_fingerprint);
    });
  });

  describe("when the fingerprint itself was replaced", () => {
    it("throws LOCK_FINGERPRINT_MISMATCH", async () => {
      const lock = await createLock(baseOpts);
      const e = await rejection(verifyLock({ ...lock, behavioral_fingerprint: `blake3:${"0".repeat(64)}` }));
      expectLockError(e, "LOCK_FINGERPRINT_MISMATCH");
    });
  });

  describe("when handed an object that never went through parseLock", () => {
    it("validates it first", async () => {
      const lock = await createLock(baseOpts);
      const bad = { ...lock, behavioral_fingerprint: `sha256:${"0".repeat(64)}` };
      expectLockError(await rejection(verifyLock(bad)), "LOCK_FINGERPRINT_FORMAT");
      expectLockError(await rejection(verifyLock({ ...lock, extra: 1 } as ActivationLock)), "LOCK_SCHEMA_INVALID");
    });
  });
});

describe("#serializeLock", () => {
  it("writes 2-space JSON in canonical key order with a trailing newline", async () => {
    const lock = await createLock({ ...baseOpts, promptHash: B });
    const text = serializeLock(lock);
    expect(text.endsWith("}\n")).toBe(true);
    expect(text.split("\n")[1]).toBe('  "agent_artifact": {');
    const topKeys = [...text.matchAll(/^ {2}"([a-z_]+)"/gm)].map((m) => m[1]);
    expect(topKeys).toEqual(["agent_artifact", "behavioral_fingerprint", "inputs", "policy_bundle", "schema_version"]);
    expect(parseLock(text)).toEqual(lock);
  });

  it("gives the same bytes for the same lock whatever its key order", async () => {
    const lock = await createLock(baseOpts);
    const reversed = Object.fromEntries(Object.entries(lock).reverse()) as ActivationLock;
    expect(serializeLock(reversed)).toBe(serializeLock(lock));
  });
});

describe("#hashInputFile", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lock-hash-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("streams BLAKE3-256 by default and SHA-256 on request", async () => {
    const data = Buffer.alloc(3 * 1024 * 1024 + 17, 0x5a);
    const path = join(dir, "prompt.txt");
    await writeFile(path, data);
    expect(await hashInputFile(path)).toBe(`blake3:${await blake3(data, 256)}`);
    expect(await hashInputFile(path, "sha256")).toBe(`sha256:${createHash("sha256").update(data).digest("hex")}`);
  });

  it("hashes an empty file", async () => {
    const path = join(dir, "empty");
    await writeFile(path, "");
    expect(await hashInputFile(path)).toBe("blake3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  });

  describe("when the file cannot be read", () => {
    it.each([["missing", "nope"], ["a directory", "."]])("throws LOCK_INPUT_UNREADABLE for %s", async (_n, name) => {
      const e = expectLockError(await rejection(hashInputFile(join(dir, name))), "LOCK_INPUT_UNREADABLE");
      expect(e.details.path).toBe(join(dir, name));
    });
  });

  it("refuses an unknown algorithm with a usage error", async () => {
    const e = await rejection(hashInputFile(join(dir, "empty"), "md5" as "sha256"));
    expect(e).toBeInstanceOf(UsageError);
  });
});
