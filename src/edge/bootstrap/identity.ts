import { blake3 } from "hash-wasm";
import { describeBoundedReadProblem, readRegularFileBounded } from "../../lib/index.js";
import { canonicalJson } from "../../lock/index.js";
import type { EdgeConfig } from "../config/schema.js";
import { EdgeError } from "../errors.js";

/**
 * What identifies the installed OS. Everything that changes on an OS
 * replacement belongs here: the os-release keys (distribution, version,
 * build id), the kernel release (a kernel-only update changes nothing else:
 * the seed's GAP-B4) and the machine architecture. `identity_version` names
 * this shape, so adding a field later changes every fingerprint on purpose.
 */
export interface OsIdentity {
  identity_version: 1;
  os_release: Record<string, string>;
  kernel_release: string;
  machine_arch: string;
  /**
   * Only when a source is not valid UTF-8: its exact bytes, base64. The
   * decoded text replaces invalid bytes with U+FFFD, so two different files
   * would otherwise get one fingerprint. Absent for UTF-8 sources, so their
   * fingerprints are unchanged.
   */
  raw_sources?: { os_release?: string; kernel_release?: string };
}

/** Bounds on the identity sources: they are small text files; anything larger is not one. */
const MAX_SOURCE_BYTES = 64 * 1024;
const KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Parses os-release(5): `KEY=value` lines, values optionally in single or
 * double quotes (double quotes take `\"`, `\\`, `\$` and `` \` `` escapes),
 * blank lines and `#` comments ignored. A line that is not an assignment is
 * refused: the identity must be exactly what the file says, not a guess.
 */
export function parseOsRelease(text: string, source: string): Record<string, string> {
  // No prototype: a `__proto__=` line is a key like any other (on `{}` the assignment set the prototype and the key vanished).
  const out = Object.create(null) as Record<string, string>;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const eq = line.indexOf("=");
    const key = eq > 0 ? line.slice(0, eq) : "";
    if (!KEY_RE.test(key)) throw identityError(`${source} line ${i + 1} is not KEY=value`);
    out[key] = unquote(line.slice(eq + 1), `${source} line ${i + 1}`);
  });
  return out;
}

function unquote(v: string, where: string): string {
  const q = v[0];
  if (q !== '"' && q !== "'") return v;
  if (v.length < 2 || v[v.length - 1] !== q) throw identityError(`${where}: unterminated quote`);
  const inner = v.slice(1, -1);
  return q === "'" ? inner : inner.replace(/\\(["\\$`])/g, "$1");
}

function identityError(message: string, cause?: unknown): EdgeError {
  return new EdgeError("OS_IDENTITY_UNREADABLE", message, cause === undefined ? {} : { cause });
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A source's text, and its raw bytes (base64) when they are not valid UTF-8. Read with a bound: a FIFO or /dev/zero is refused, not drained. */
async function readSource(path: string, what: string): Promise<{ text: string; raw?: string }> {
  const bytes = await readRegularFileBounded(path, MAX_SOURCE_BYTES, (p, cause) =>
    identityError(p.kind === "too_big" ? `the ${what} (${path}) is over the ${MAX_SOURCE_BYTES} bytes an identity source may be` : `cannot read the ${what} (${path}): ${p.kind === "unreadable" ? p.errno : describeBoundedReadProblem(p)}`, cause));
  const text = bytes.toString("utf8");
  try {
    utf8.decode(bytes);
    return { text };
  } catch {
    return { text, raw: bytes.toString("base64") };
  }
}

/** Reads the OS identity from the sources named in [bootstrap] (tests point them at files they control). */
export async function readOsIdentity(sources: EdgeConfig["bootstrap"]): Promise<OsIdentity> {
  const osr = await readSource(sources.osReleaseFile, "os-release file");
  const os_release = parseOsRelease(osr.text, sources.osReleaseFile);
  const kr = await readSource(sources.kernelReleaseFile, "kernel release file");
  const kernel_release = kr.text.trim();
  if (kernel_release === "") throw identityError(`the kernel release file (${sources.kernelReleaseFile}) is empty`);
  const raw = { ...(osr.raw === undefined ? {} : { os_release: osr.raw }), ...(kr.raw === undefined ? {} : { kernel_release: kr.raw }) };
  return { identity_version: 1, os_release, kernel_release, machine_arch: sources.machineArch ?? process.arch, ...(Object.keys(raw).length > 0 ? { raw_sources: raw } : {}) };
}

/** The exact bytes the fingerprint is computed over: RFC 8785 canonical JSON of the identity (pipe to `b3sum` to check). */
export function identityPayload(identity: OsIdentity): string {
  return canonicalJson(identity);
}

/** `blake3:` + hex BLAKE3-256 of {@link identityPayload}. */
export async function osFingerprint(identity: OsIdentity): Promise<string> {
  return `blake3:${await blake3(Buffer.from(identityPayload(identity), "utf8"), 256)}`;
}
