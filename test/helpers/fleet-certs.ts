/**
 * Fleet certificates for relay tests, made by the `openssl` CLI (an independent
 * implementation from our src/pki, so a test that uses these checks that
 * certificates we did not write are accepted or refused as they should be).
 *
 *   const fleet = await makeCa(dir, "fleet-ca");
 *   const a = await fleet.issue("edge-a");                        // valid now, CN = DNS SAN = "edge-a"
 *   const old = await fleet.issue("edge-a", { notBefore: "20200101000000Z", notAfter: "20200201000000Z" });
 *   const stranger = await (await makeCa(dir, "other-ca")).issue("edge-a");
 *
 * Each CA is an `openssl ca` directory with a minimal config, so explicit
 * validity dates (an expired or a not-yet-valid certificate) need no fake clock.
 * Keys are ECDSA P-256; node certificates carry EKU serverAuth + clientAuth.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** What the transport's `tls` option takes: PEM buffers. */
export interface TlsIdentity {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

export interface IssueOptions {
  /** `YYYYMMDDHHMMSSZ` (openssl ca -startdate); default: one hour ago. */
  notBefore?: string;
  /** `YYYYMMDDHHMMSSZ` (openssl ca -enddate); default: 30 days from now. */
  notAfter?: string;
  /** Subject CN; default the name. */
  cn?: string;
  /** DNS SANs; default [name]. */
  dnsSans?: string[];
}

export interface TestCa {
  name: string;
  dir: string;
  /** The CA certificate (PEM). */
  cert: Buffer;
  /** A node certificate signed by this CA; `tls.ca` is THIS CA's certificate. */
  issue(name: string, opts?: IssueOptions): Promise<TlsIdentity>;
}

/** openssl's time format, UTC. */
export function opensslTime(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:T]/g, "").replace(/\.\d{3}Z$/, "Z");
}

function caConfig(dir: string): string {
  return [
    "[ca]", "default_ca = fleet",
    "[fleet]",
    `dir = ${dir}`,
    "database = $dir/index.txt", "new_certs_dir = $dir/issued", "serial = $dir/serial",
    "certificate = $dir/ca.crt", "private_key = $dir/ca.key",
    "default_md = sha256", "policy = any", "copy_extensions = copy", "x509_extensions = node",
    "unique_subject = no", "email_in_dn = no",
    "[any]", "commonName = supplied",
    "[node]",
    "basicConstraints = critical,CA:false",
    "keyUsage = critical,digitalSignature",
    "extendedKeyUsage = serverAuth,clientAuth",
    "subjectKeyIdentifier = hash", "authorityKeyIdentifier = keyid",
    "",
  ].join("\n");
}

/** A new CA (self-signed ECDSA P-256, valid from a day ago for a year) in `parent/name`. */
export async function makeCa(parent: string, name: string): Promise<TestCa> {
  const dir = join(parent, name);
  await mkdir(join(dir, "issued"), { recursive: true });
  await writeFile(join(dir, "index.txt"), "");
  await writeFile(join(dir, "serial"), "1000\n");
  await writeFile(join(dir, "ca.cnf"), caConfig(dir));
  await run("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", join(dir, "ca.key"), "-out", join(dir, "ca.crt"), "-days", "365", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const cert = await readFile(join(dir, "ca.crt"));
  let serial = 0;
  // `openssl ca` updates index.txt and serial in place: one issue at a time per CA.
  let queue: Promise<unknown> = Promise.resolve();
  const issue = (node: string, opts: IssueOptions = {}): Promise<TlsIdentity> => {
    const next = queue.then(() => issueNow(node, opts));
    queue = next.catch(() => undefined);
    return next;
  };
  const issueNow = async (node: string, opts: IssueOptions): Promise<TlsIdentity> => {
    const base = join(dir, `${node}-${++serial}`);
    const sans = (opts.dnsSans ?? [node]).map((s) => `DNS:${s}`).join(",");
    await run("openssl", [
      "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", `/CN=${opts.cn ?? node}`,
      ...(sans === "" ? [] : ["-addext", `subjectAltName=${sans}`]),
    ]);
    await run("openssl", [
      "ca", "-batch", "-notext", "-config", join(dir, "ca.cnf"), "-in", `${base}.csr`, "-out", `${base}.crt`,
      "-startdate", opts.notBefore ?? opensslTime(Date.now() - 3600_000),
      "-enddate", opts.notAfter ?? opensslTime(Date.now() + 30 * 86400_000),
    ]);
    return { cert: await readFile(`${base}.crt`), key: await readFile(`${base}.key`), ca: cert };
  };
  return { name, dir, cert, issue };
}
