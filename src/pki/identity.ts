/**
 * The one rule for a fleet certificate's identity, used by every party that
 * names a peer from its certificate: a sender checking the server it dialed
 * (transport checkServerIdentity), a receiver naming its client, and
 * `edged precheck` checking its own certificate.
 *
 * The identity is the subject's CN, and there must be exactly one. DNS SANs
 * never confer an identity: they are for the TLS name of an address
 * (`localhost`, an alias), and IP SANs are addresses. Before this rule the
 * sender and the precheck accepted the CN or any DNS SAN while the receiver
 * used the CN only, so a certificate issued to edge-a with the extra SAN
 * edge-b passed as edge-b when dialed: one certificate, two identities.
 */
export type CertIdentity = { ok: true; id: string } | { ok: false; reason: string };

export function certIdentity(cns: readonly string[]): CertIdentity {
  if (cns.length === 1) return { ok: true, id: cns[0] as string };
  return { ok: false, reason: `the certificate has ${cns.length} subject CNs, so it names no single node (a fleet certificate's identity is its one CN)` };
}

/** The identity of a certificate as Node's crypto.X509Certificate shows it (subject lines `CN=…`). */
export function x509Identity(cert: { subject: string }): CertIdentity {
  return certIdentity(cert.subject.split("\n").filter((l) => l.startsWith("CN=")).map((l) => l.slice(3)));
}

/** The identity of a certificate as tls getPeerCertificate() shows it (subject.CN a string, or an array for several). */
export function peerCertIdentity(cert: { subject?: { CN?: string | string[] } }): CertIdentity {
  const cn = cert.subject?.CN;
  return certIdentity(cn === undefined ? [] : Array.isArray(cn) ? cn : [cn]);
}
