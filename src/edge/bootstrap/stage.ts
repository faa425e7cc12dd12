import { mkdir, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { z } from "zod";
import { errnoCode, messageOf, writeFileAtomic } from "../../lib/index.js";
import { requireTrustRoot, stateRootPaths } from "../../node/index.js";
import { EdgeError } from "../errors.js";
import { RUNTIME_LIMITS, verifyRuntimeEnvelope, verifyRuntimeFiles } from "./manifest.js";
import type { VerifiedRuntime } from "./manifest.js";
import { installTree, readExact } from "./tree.js";

/** Inside `{state_root}/runtime/`: the envelope as signed, and the files under their manifest paths. */
export const STAGED_ENVELOPE = "runtime.dsse.json";
export const STAGED_FILES = "files";

/** Where the staged runtime lives under a state root. */
export function stagedRuntimePaths(stateRoot: string): { dir: string; envelope: string; files: string } {
  const dir = stateRootPaths(stateRoot).runtimeStaging;
  return { dir, envelope: join(dir, STAGED_ENVELOPE), files: join(dir, STAGED_FILES) };
}

/**
 * Verifies a runtime (signed manifest + files) against the node's trust root
 * and reads each file ONCE: the returned bytes are the verified ones, and the
 * only ones a caller may install. `envelopeBytes` are the envelope's exact bytes.
 */
export async function verifyRuntime(stateRoot: string, envelopeBytes: Buffer, filesDir: string): Promise<VerifiedRuntime> {
  const trust = await requireTrustRoot(stateRoot);
  const manifest = verifyRuntimeEnvelope(envelopeBytes, trust.keys, trust.threshold);
  return verifyRuntimeFiles(manifest, envelopeBytes, (e) => readExact(join(filesDir, e.path), e.size, "RUNTIME_MANIFEST_INVALID"));
}

export interface StageResult {
  dir: string;
  manifestDigest: string;
  files: { path: string; size: number; sha256: string }[];
}

/**
 * `edged runtime stage`: verifies the runtime in `fromDir` against the signed
 * manifest and the node's trust root, then writes exactly the verified bytes
 * (and the envelope) into `{state_root}/runtime/`, durably and all at once.
 * Nothing is staged unless everything verifies.
 */
export async function stageRuntime(opts: { stateRoot: string; fromDir: string; envelopeFile: string }): Promise<StageResult> {
  const envelopeBytes = await readEnvelope(opts.envelopeFile);
  const v = await verifyRuntime(opts.stateRoot, envelopeBytes, opts.fromDir);
  const paths = stagedRuntimePaths(opts.stateRoot);
  await recordSequence(opts.stateRoot, v);
  await installTree(paths.dir, [
    { path: STAGED_ENVELOPE, bytes: v.envelopeBytes, mode: 0o644 },
    ...v.files.map((f) => ({ path: `${STAGED_FILES}/${f.entry.path}`, bytes: f.bytes, mode: f.entry.mode })),
  ]);
  return { dir: paths.dir, manifestDigest: v.manifestDigest, files: v.files.map((f) => ({ path: f.entry.path, size: f.entry.size, sha256: f.entry.sha256 })) };
}

const sequenceRecord = z.strictObject({ sequence: z.number().int().positive(), manifest_digest: z.string().regex(/^sha256:[a-f0-9]{64}$/) });

/**
 * Refuses a runtime older than the highest ever staged (a replay of an old,
 * validly signed runtime would roll the node back), or of the same sequence
 * with other content; then records this one durably, BEFORE it is staged (a
 * kill in between leaves the record ahead of the staged copy: re-staging the
 * same runtime is still accepted, an older one still refused).
 */
async function recordSequence(stateRoot: string, v: VerifiedRuntime): Promise<void> {
  const path = stateRootPaths(stateRoot).runtimeSequence;
  const text = await readFile(path, "utf8").catch((e: unknown) => {
    if (errnoCode(e) === "ENOENT") return undefined;
    throw new EdgeError("STATE_ROOT_INVALID", `cannot read ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  });
  if (text !== undefined) {
    let prev;
    try {
      prev = sequenceRecord.parse(JSON.parse(text));
    } catch (e) {
      throw new EdgeError("STATE_ROOT_INVALID", `${path} is malformed: ${messageOf(e)}`, { cause: e });
    }
    const seq = v.manifest.sequence;
    if (seq < prev.sequence) throw new EdgeError("RUNTIME_MANIFEST_INVALID", `the runtime manifest has sequence ${seq}, lower than the ${prev.sequence} already staged on this node: refusing to roll the runtime back`, { hint: "sign the runtime you want with a higher --sequence" });
    if (seq === prev.sequence && prev.manifest_digest !== v.manifestDigest) throw new EdgeError("RUNTIME_MANIFEST_INVALID", `the runtime manifest has sequence ${seq}, the same as the runtime already staged, but other content (${v.manifestDigest}, staged ${prev.manifest_digest})`, { hint: "sign a new runtime with a higher --sequence" });
    if (seq === prev.sequence) return;
  }
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, `${JSON.stringify({ sequence: v.manifest.sequence, manifest_digest: v.manifestDigest })}\n`);
}

/** Reads an envelope file with a bound (it is small; a huge file is not one). */
export async function readEnvelope(path: string): Promise<Buffer> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (e) {
    throw new EdgeError("RUNTIME_MANIFEST_INVALID", `cannot read the runtime manifest ${path}: ${errnoCode(e) ?? String(e)}`, { cause: e });
  }
  if (size > RUNTIME_LIMITS.maxEnvelopeBytes) throw new EdgeError("RUNTIME_MANIFEST_INVALID", `${path} is ${size} bytes, over the ${RUNTIME_LIMITS.maxEnvelopeBytes} a runtime manifest may be`);
  return readExact(path, size, "RUNTIME_MANIFEST_INVALID");
}
