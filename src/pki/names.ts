import { isIP } from "node:net";
import { PkiError } from "./errors.js";

/** A node name: the same rule as an edge.toml node id, so a peer id can be its certificate's name. */
export const NODE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const DNS_LABEL_RE = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** One subjectAltName entry as @peculiar/x509 spells it. */
export interface SanEntry {
  type: "dns" | "ip";
  value: string;
}

export function checkNodeName(name: string): string {
  if (!NODE_NAME_RE.test(name)) {
    throw new PkiError("CERT_NAME_INVALID", `node name ${JSON.stringify(name.slice(0, 140))} is not valid: it becomes the certificate's CN, DNS SAN and file name`);
  }
  return name;
}

/** An extra SAN: an IP address (v4 or v6) or a DNS name (labels of letters, digits, '-', '_'; `*.` allowed first). */
export function parseSan(raw: string): SanEntry {
  const v = raw.trim();
  if (isIP(v) !== 0) return { type: "ip", value: v };
  const labels = (v.startsWith("*.") ? v.slice(2) : v).split(".");
  if (v.length > 0 && v.length <= 253 && labels.every((l) => DNS_LABEL_RE.test(l))) return { type: "dns", value: v.toLowerCase() };
  throw new PkiError("CERT_NAME_INVALID", `--san ${JSON.stringify(raw.slice(0, 260))} is neither an IP address nor a DNS name`);
}

/** The node's own DNS SAN first, then the extras, without duplicates. */
export function sanList(name: string, extra: readonly string[] = []): SanEntry[] {
  const out: SanEntry[] = [{ type: "dns", value: name }];
  for (const s of extra.map(parseSan)) {
    if (!out.some((o) => o.type === s.type && o.value.toLowerCase() === s.value.toLowerCase())) out.push(s);
  }
  return out;
}
