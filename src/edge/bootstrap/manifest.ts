import { createHash } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { lstat, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { errnoCode, safeEqual, sha256Digest } from "../../lib/index.js";
import { parseEnvelope, signEnvelope, verifyEnvelope } from "../../sign/index.js";
import type { DsseEnvelope, TrustedKey } from "../../sign/index.js";
import { EdgeError } from "../errors.js";

/** The DSSE payloadType of a signed runtime manifest: a signature over another type never verifies as one. */
export const RUNTIME_MANIFEST_TYPE = "application/vnd.autonomyops.runtime-manifest+json";

/** Bounds: a runtime is a handful of files; these keep a hostile manifest from exhausting memory. */
export const RUNTIME_LIMITS = { maxFiles: 4096, maxFileBytes: 512 * 1024 * 1024, maxTotalBytes: 1024 * 1024 * 1024, maxEnvelopeBytes: 4 * 1024 * 1024 } as const;

/** A path segment we accept: no `.`/`..`, no separators, no control characters, no leading dash (a file named like a flag). */
const SEGMENT_RE = /^(?!\.{1,2}$)(?!-)[A-Za-z0-9._+@-]{1,255}$/;

/** A safe relative path: `/`-separated segments, each {@link SEGMENT_RE}; never absolute, never climbing out. */
export function isSafeRelativePath(p: string): boolean {
  if (p.length === 0 || p.length > 1024) return false;
  return p.split("/").every((s) => SEGMENT_RE.test(s));
}

const fileSchema = z.strictObject({
  path: z.string().refine(isSafeRelativePath, "must be a relative path of plain segments (no '..', no absolute path)"),
  size: z.number().int().min(0).max(RUNTIME_LIMITS.maxFileBytes),
  sha256: z.string().regex(/^sha256:[a-f0-9]{64}$/),
  // Group- or world-writable files would let any local user swap what root runs: refused when signing and when staging.
  mode: z.number().int().min(0).max(0o777).refine((m) => (m & 0o022) === 0, "must not be group- or world-writable (mode & 022)"),
});

export const runtimeManifestSchema = z.strictObject({
  version: z.literal(1),
  /**
   * Orders the operator's runtimes: a node never stages one lower than the
   * highest it staged (a replayed old, still validly signed runtime would roll
   * it back). Default when signing: the signing time in ms.
   */
  sequence: z.number().int().positive().max(Number.MAX_SAFE_INTEGER),
  files: z.array(fileSchema).min(1).max(RUNTIME_LIMITS.maxFiles),
});
export type RuntimeManifest = z.output<typeof runtimeManifestSchema>;
export type RuntimeFileEntry = RuntimeManifest["files"][number];

/** A verified runtime: the manifest, the envelope's exact bytes, and each file's verified bytes (held in memory: the only copy used after the check). */
export interface VerifiedRuntime {
  manifest: RuntimeManifest;
  envelopeBytes: Buffer;
  /** `sha256:` of the envelope bytes: names the staged runtime in evidence. */
  manifestDigest: string;
  files: { entry: RuntimeFileEntry; bytes: Buffer }[];
}

function invalid(message: string, cause?: unknown, hint?: string): EdgeError {
  return new EdgeError("RUNTIME_MANIFEST_INVALID", message, { ...(cause === undefined ? {} : { cause }), ...(hint === undefined ? {} : { hint }) });
}

/** Refuses duplicate paths and a path that is also another file's directory (`a` and `a/b`): the install would be ambiguous. */
function checkPathSet(files: readonly RuntimeFileEntry[]): void {
  const paths = new Set(files.map((f) => f.path));
  if (paths.size !== files.length) throw invalid("the runtime manifest lists a path twice");
  for (const p of paths) {
    const parts = p.split("/");
    for (let i = 1; i < parts.length; i++) if (paths.has(parts.slice(0, i).join("/"))) throw invalid(`the runtime manifest lists ${p} under ${parts.slice(0, i).join("/")}, which is a file`);
  }
  const total = files.reduce((n, f) => n + f.size, 0);
  if (total > RUNTIME_LIMITS.maxTotalBytes) throw invalid(`the runtime is ${total} bytes, over the ${RUNTIME_LIMITS.maxTotalBytes} allowed`);
}

/** Parses and checks a manifest payload (the verified DSSE payload bytes). */
export function parseRuntimeManifest(payload: Uint8Array): RuntimeManifest {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(payload).toString("utf8"));
  } catch (e) {
    throw invalid("the runtime manifest payload is not JSON", e);
  }
  const r = runtimeManifestSchema.safeParse(doc);
  if (!r.success) throw invalid(`the runtime manifest is malformed: ${r.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ")}`);
  checkPathSet(r.data.files);
  return r.data;
}

/**
 * Walks `dir` (operator side): every regular file, by safe relative path,
 * sorted. Symlinks, devices and unsafe names are refused, not skipped: what
 * the operator signs must be exactly the directory.
 */
export async function collectRuntimeFiles(dir: string): Promise<{ entry: RuntimeFileEntry; bytes: Buffer }[]> {
  const out: { entry: RuntimeFileEntry; bytes: Buffer }[] = [];
  const walk = async (rel: string): Promise<void> => {
    const names = (await readdir(join(dir, rel))).sort();
    for (const name of names) {
      const path = rel === "" ? name : `${rel}/${name}`;
      if (!isSafeRelativePath(path)) throw invalid(`${join(dir, path)}: the name is not a safe relative path`);
      const st = await lstat(join(dir, path));
      if (st.isDirectory()) await walk(path);
      else if (st.isFile()) {
        if (out.length >= RUNTIME_LIMITS.maxFiles) throw invalid(`${dir} holds more than ${RUNTIME_LIMITS.maxFiles} files`);
        if ((st.mode & 0o022) !== 0) throw invalid(`${join(dir, path)} is group- or world-writable (mode ${(st.mode & 0o777).toString(8)}): a runtime is never installed writable by others`, undefined, `chmod go-w ${join(dir, path)}`);
        const bytes = await readFile(join(dir, path));
        out.push({ entry: { path, size: bytes.length, sha256: sha256Digest(bytes), mode: st.mode & 0o777 }, bytes });
      } else throw invalid(`${join(dir, path)} is not a regular file or directory (symlinks and devices are refused)`);
    }
  };
  try {
    await walk("");
  } catch (e) {
    if (e instanceof EdgeError) throw e;
    throw invalid(`cannot read the runtime directory ${dir}: ${errnoCode(e) ?? String(e)}`, e);
  }
  if (out.length === 0) throw invalid(`${dir} holds no files`);
  checkPathSet(out.map((f) => f.entry));
  return out;
}

/** Operator side: the signed manifest (a DSSE envelope) of every file under `dir`. */
export async function signRuntimeManifest(dir: string, keys: readonly KeyObject[], opts: { sequence?: number } = {}): Promise<{ envelope: DsseEnvelope; manifest: RuntimeManifest }> {
  const files = await collectRuntimeFiles(dir);
  const sequence = opts.sequence ?? Date.now();
  if (!Number.isSafeInteger(sequence) || sequence < 1) throw invalid(`the runtime manifest sequence must be a positive integer, got ${sequence}`);
  const manifest: RuntimeManifest = { version: 1, sequence, files: files.map((f) => f.entry) };
  return { envelope: signEnvelope(RUNTIME_MANIFEST_TYPE, Buffer.from(JSON.stringify(manifest), "utf8"), keys), manifest };
}

/** Verifies the envelope bytes against the node's trusted keys and threshold; returns the manifest they sign. */
export function verifyRuntimeEnvelope(envelopeBytes: Uint8Array, trusted: readonly TrustedKey[], threshold: number): RuntimeManifest {
  if (envelopeBytes.length > RUNTIME_LIMITS.maxEnvelopeBytes) throw invalid(`the runtime manifest envelope is ${envelopeBytes.length} bytes, over ${RUNTIME_LIMITS.maxEnvelopeBytes}`);
  const env = parseEnvelope(envelopeBytes);
  if (typeof env === "string") throw invalid(`the runtime manifest envelope is malformed: ${env}`);
  const r = verifyEnvelope(env, trusted, threshold, RUNTIME_MANIFEST_TYPE);
  if (!r.ok) throw invalid(`the runtime manifest signature does not verify against the node's trust root: ${r.detail}`);
  return parseRuntimeManifest(r.payload);
}

/**
 * Checks each file's bytes against its manifest entry (size, then SHA-256) and
 * returns the verified runtime. `read` is called once per file: the bytes it
 * returns are the ones checked AND the ones the caller installs.
 */
export async function verifyRuntimeFiles(manifest: RuntimeManifest, envelopeBytes: Buffer, read: (entry: RuntimeFileEntry) => Promise<Buffer>): Promise<VerifiedRuntime> {
  const files: VerifiedRuntime["files"] = [];
  for (const entry of manifest.files) {
    const bytes = await read(entry);
    if (bytes.length !== entry.size) throw invalid(`${entry.path} is ${bytes.length} bytes, the signed manifest says ${entry.size}`);
    const actual = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    if (!safeEqual(actual, entry.sha256)) throw invalid(`${entry.path} does not match the signed manifest: expected ${entry.sha256}, got ${actual}`);
    files.push({ entry, bytes });
  }
  return { manifest, envelopeBytes, manifestDigest: sha256Digest(envelopeBytes), files };
}
