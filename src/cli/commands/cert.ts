import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { certSummaries, certSummary, initCa, issueCert } from "../../pki/index.js";
import type { CertSummary } from "../../pki/index.js";
import { readInputFile } from "../../lib/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";

const collect = (v: string, prev: string[]): string[] => [...prev, ...v.split(",").filter((s) => s !== "")];

function wholeDays(v: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError("must be a whole number of days ≥ 1");
  return n;
}

export function registerCert(program: Command): void {
  const cert = program.command("cert").description("fleet certificates for mutual TLS between edge nodes (ECDSA P-256)");
  const ca = cert.command("ca").description("the fleet certificate authority");
  ca.command("init")
    .description("create the fleet CA: DIR/ca.crt and DIR/ca.key (PKCS#8 PEM, mode 0600); refuses to replace one without --force")
    .requiredOption("--out <dir>", "directory to write ca.crt and ca.key into")
    .option("--name <cn>", "the CA's common name", "AutonomyOps fleet CA")
    .option("--days <n>", "validity in days", wholeDays, 3650)
    .option("--force", "replace an existing CA (every certificate it issued stops being trusted)")
    .option("--json", "machine-readable output")
    .action(action(async (flags: { out: string; name: string; days: number; force?: boolean; json?: boolean }) => {
      const written = await initCa({ outDir: flags.out, name: flags.name, days: flags.days, force: flags.force ?? false });
      const summary = certSummary((await readInputFile(written.certFile, "the CA certificate")).toString("utf8"), written.certFile);
      emit({ ok: true, cert_file: written.certFile, key_file: written.keyFile, certificate: summary }, flags,
        (r) => `CA certificate: ${r.cert_file}\nCA key:         ${r.key_file} (keep it offline; mode 0600)\n${renderSummary(r.certificate)}`);
    }));
  cert.command("issue")
    .description("issue a node certificate signed by the fleet CA: CN and DNS SAN = NODE, EKU serverAuth+clientAuth; writes NODE.crt and NODE.key (0600)")
    .requiredOption("--ca <dir>", "the CA directory (ca.crt, ca.key)")
    .requiredOption("--name <node>", "the node name (its edge.toml node id)")
    .option("--days <n>", "validity in days", wholeDays, 90)
    .option("--out <dir>", "where to write NODE.crt and NODE.key (default: the CA directory)")
    .option("--san <ip|dns>", "an extra subjectAltName (IP address or DNS name); repeat or comma-separate", collect, [])
    .option("--json", "machine-readable output")
    .action(action(async (flags: { ca: string; name: string; days: number; out?: string; san: string[]; json?: boolean }) => {
      const written = await issueCert({ caDir: flags.ca, name: flags.name, days: flags.days, sans: flags.san, ...(flags.out === undefined ? {} : { outDir: flags.out }) });
      const summary = certSummary((await readInputFile(written.certFile, "the issued certificate")).toString("utf8"), written.certFile);
      emit({ ok: true, cert_file: written.certFile, key_file: written.keyFile, certificate: summary }, flags,
        (r) => `certificate: ${r.cert_file}\nkey:         ${r.key_file} (mode 0600)\n${renderSummary(r.certificate)}`);
    }));
  cert.command("show")
    .description("print the certificates in a PEM file: names, SANs, validity, SHA-256 fingerprint")
    .argument("<file>", "a PEM certificate (or bundle)")
    .option("--json", "machine-readable output")
    .action(action(async (file: string, flags: { json?: boolean }) => {
      const certificates = certSummaries((await readInputFile(file, "the certificate to show")).toString("utf8"), file);
      emit({ ok: true, file, certificates }, flags, (r) => r.certificates.map(renderSummary).join("\n\n"));
    }));
}

function renderSummary(s: CertSummary): string {
  return [
    `subject:     CN=${s.subject_cn}${s.is_ca ? " (CA)" : ""}`,
    `issuer:      CN=${s.issuer_cn}`,
    ...(s.sans.length > 0 ? [`SANs:        ${s.sans.join(", ")}`] : []),
    ...(s.extended_key_usage.length > 0 ? [`usage:       ${s.extended_key_usage.join(", ")}`] : []),
    `valid:       ${s.not_before} .. ${s.not_after}`,
    `serial:      ${s.serial}`,
    `sha256:      ${s.sha256_fingerprint}`,
  ].join("\n");
}
