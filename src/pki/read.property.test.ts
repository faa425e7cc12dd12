import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, expect, it } from "vitest";
import { PkiError, certSummary, initCa, issueCert } from "./index.js";

let dir: string;
let pem: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "pki-prop-"));
  await initCa({ outDir: dir });
  pem = await readFile((await issueCert({ caDir: dir, name: "edge-a", sans: ["127.0.0.1"] })).certFile, "utf8");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The contract for hostile certificate files: a summary, or CERT_UNREADABLE naming the file — never another error. */
function readOrRefuse(text: string): void {
  try {
    const s = certSummary(text, "x.crt");
    expect(s.sha256_fingerprint).toMatch(/^[0-9a-f]{64}$/);
  } catch (e) {
    if (!(e instanceof PkiError)) throw e;
    expect(e.code).toBe("CERT_UNREADABLE");
    expect(e.message.startsWith("x.crt: ")).toBe(true);
  }
}

it("random edits of a certificate's PEM text only ever give a summary or CERT_UNREADABLE", () => {
  const edit = fc.record({ at: fc.nat(), del: fc.nat({ max: 8 }), ins: fc.string({ maxLength: 8, unit: "binary" }) });
  fc.assert(fc.property(fc.array(edit, { minLength: 1, maxLength: 3 }), (edits) => {
    let text = pem;
    for (const e of edits) {
      const at = e.at % (text.length + 1);
      text = text.slice(0, at) + e.ins + text.slice(at + e.del);
    }
    readOrRefuse(text);
  }), { numRuns: 400 });
});

it("random byte flips in the DER (re-encoded as valid base64) only ever give a summary or CERT_UNREADABLE", () => {
  const der = Buffer.from(pem.replace(/-----[A-Z ]+-----|\n/g, ""), "base64");
  fc.assert(fc.property(fc.array(fc.record({ at: fc.nat({ max: der.length - 1 }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }), fc.nat({ max: der.length }), (flips, cut) => {
    const bytes = Buffer.from(der);
    for (const f of flips) bytes[f.at] = f.byte;
    const body = bytes.subarray(0, Math.max(1, cut)).toString("base64").replace(/(.{64})/g, "$1\n");
    readOrRefuse(`-----BEGIN CERTIFICATE-----\n${body}\n-----END CERTIFICATE-----\n`);
  }), { numRuns: 400 });
});
