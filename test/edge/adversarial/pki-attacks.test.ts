/**
 * Adversarial review, session 3 (helper adv): `autonomy cert` and the way a
 * certificate's names become a peer's identity. `attack: …` tests that fail
 * are findings; the others are regression tests for attacks that held.
 */
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PeerCertificate } from "node:tls";
import { describe, expect, it } from "vitest";
import { checkCertificates, initCa, issueCert } from "../../../src/pki/index.js";
import { checkPeerName } from "../../../src/edge/relay/transport/client.js";

/** What Node's getPeerCertificate() gives checkServerIdentity: subject fields and the `DNS:a, DNS:b` SAN string. */
function peerCertOf(pem: string): PeerCertificate {
  const x = new X509Certificate(pem);
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(x.subject)?.[1];
  // Only the fields checkPeerName reads; the rest of PeerCertificate is irrelevant here.
  return { subject: { CN: cn }, subjectaltname: x.subjectAltName ?? "" } as unknown as PeerCertificate;
}

async function ca(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "adv3-ca-"));
  await initCa({ outDir: dir });
  return dir;
}

describe("adversarial review 3: autonomy cert and peer names", () => {
  it("attack: a certificate issued to edge-a with an extra SAN edge-b is not accepted as peer edge-b (by a sender dialing edge-b, nor by edge-b's precheck)", async () => {
    const dir = await ca();
    // `autonomy cert issue --name edge-a --san edge-b`: e.g. an alias that later became another node's id.
    const { certFile, keyFile } = await issueCert({ caDir: dir, name: "edge-a", sans: ["edge-b"] });
    const pem = await readFile(certFile, "utf8");
    // The receiver names its client by the subject CN only (edge-a); a sender accepts a server by CN OR any DNS SAN.
    // One certificate, two identities: edge-a can answer for edge-b and take the segments owed to it.
    expect(checkPeerName("edge-a", peerCertOf(pem))).toBeUndefined();
    expect(checkPeerName("edge-b", peerCertOf(pem)), "edge-a's certificate passes as edge-b").toBeInstanceOf(Error);
    const problems = await checkCertificates({ certFile, keyFile, caFile: join(dir, "ca.crt"), now: Date.now(), minValidDays: 7, expectedName: "edge-b" });
    expect(problems.map((p) => p.code), "edge-b's precheck accepts a certificate whose CN is edge-a").toContain("CERT_NAME_MISMATCH");
  });

  // ---- held (regression tests) ----

  it("attack: `cert issue --name` with a path traversal, a wildcard, a slash, an over-long or a non-ASCII name is refused (CERT_NAME_INVALID) and writes nothing", async () => {
    const dir = await ca();
    const out = join(dir, "out");
    const before = await readdir(dir);
    for (const name of ["../evil", "..", "a/../../b", "/etc/x", "*", "*.fleet", "a*b", "x".repeat(129), "édge-a", "edge\u0000a", "edge a", "-rf", ".hidden", "edge-a\n"]) {
      await expect(issueCert({ caDir: dir, name, outDir: out }), JSON.stringify(name)).rejects.toMatchObject({ code: "CERT_NAME_INVALID" });
    }
    expect(await readdir(dir)).toEqual(before);
    expect(await readdir(join(dir, "..")).then((es) => es.filter((e) => e === "evil.crt" || e === "evil.key"))).toEqual([]);
  });

  it("attack: a wildcard SAN (*.fleet) never makes a certificate pass as a peer under it (b.fleet): names match exactly", async () => {
    const dir = await ca();
    const { certFile } = await issueCert({ caDir: dir, name: "edge-a", sans: ["*.fleet"] });
    const pem = await readFile(certFile, "utf8");
    expect(checkPeerName("b.fleet", peerCertOf(pem))).toBeInstanceOf(Error);
    expect(checkPeerName("edge-a", peerCertOf(pem))).toBeUndefined();
  });
});
