// The pki domain: the fleet CA and node certificates for mutual TLS (relay peers now, the control plane later).
// ECDSA P-256 throughout; generation with @peculiar/x509, parsing checked by both it and Node's OpenSSL.
export { PkiError, PKI_ERROR_CODES, PKI_SHARED_CODES } from "./errors.js";
export type { PkiErrorCode } from "./errors.js";
export { initCa, issueCert, CA_CERT_FILE, CA_KEY_FILE, ISSUED_LOG_FILE } from "./issue.js";
export type { InitCaOptions, IssueCertOptions, IssuedRecord, WrittenIdentity } from "./issue.js";
export { readTlsIdentity, certSummary, certSummaries, parseCertificates } from "./read.js";
export type { TlsIdentity, TlsIdentityFiles, CertSummary } from "./read.js";
export { checkCertificates } from "./check.js";
export type { CertProblem, CertProblemCode, CheckCertificatesOptions } from "./check.js";
export { NODE_NAME_RE } from "./names.js";
export { certIdentity, x509Identity, peerCertIdentity } from "./identity.js";
export type { CertIdentity } from "./identity.js";
