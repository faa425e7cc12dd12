/**
 * Reading a relayed release archive, every byte hostile: the archive reader's
 * limits (size, bomb, entry count, names, types), then the shape of an OCI
 * layout holding one tagged release. Only the SHAPE is checked here; whether
 * the content is a trusted release is decided by src/runtime activateRelease,
 * exactly as for a registry pull (so a tampered blob gets the same error).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ArchiveError, readTarGz } from "../archive/index.js";
import type { ArchiveEntry, ArchiveLimits } from "../archive/index.js";
import { MediaTypes, OciError, parseManifest } from "../oci/index.js";
import { decodeBase64Strict, parseEnvelope } from "../sign/index.js";
import { sha256Digest } from "../lib/index.js";
import { EdgeError } from "./errors.js";
import { LAYOUT_INDEX, LAYOUT_MARKER, LAYOUT_MARKER_TEXT } from "./release-relay-pack.js";

const REF_NAME = "org.opencontainers.image.ref.name";
const BLOB_NAME = /^blobs\/sha256\/[a-f0-9]{64}$/;
/** skopeo's and our tag grammar (src/oci reference.ts). */
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * Limits for a relayed release of at most `maxBytes` compressed (the relay's
 * max_segment_bytes): the tar may be 4× that (release layers are mostly
 * compressed already; manifests compress well but are small), no single entry
 * larger than the tar, at most 1024 files (an image, three referrers and
 * their configs need a dozen).
 */
export function relayedReleaseLimits(maxBytes: number): ArchiveLimits {
  return { maxCompressedBytes: maxBytes, maxDecompressedBytes: 4 * maxBytes, maxEntryBytes: 4 * maxBytes, maxEntries: 1024, maxExtendedHeaderBytes: 4096 };
}

/** A relayed release as read: its files (names checked) and the tag index.json gives the release. */
export interface RelayedLayout {
  files: ArchiveEntry[];
  tag: string;
}

/** Reads and shape-checks a relayed release; anything that is not one is RELAYED_RELEASE_INVALID (exit 4). */
export async function readRelayedLayout(bytes: Uint8Array, limits: ArchiveLimits): Promise<RelayedLayout> {
  let files: ArchiveEntry[];
  try {
    files = await readTarGz(bytes, { limits, what: "relayed release" });
  } catch (e) {
    if (e instanceof ArchiveError) throw invalid(`the archive was refused by the hostile-input reader: ${e.code}: ${e.message}`, e, { archive_code: e.code });
    throw e;
  }
  for (const f of files) {
    if (f.name !== LAYOUT_MARKER && f.name !== LAYOUT_INDEX && !BLOB_NAME.test(f.name)) {
      throw invalid(`entry ${JSON.stringify(f.name)} has no place in an OCI layout (only oci-layout, index.json and blobs/sha256/<64 hex>)`);
    }
  }
  const marker = files.find((f) => f.name === LAYOUT_MARKER);
  if (marker === undefined || marker.data.toString("utf8") !== LAYOUT_MARKER_TEXT) throw invalid(`it has no ${LAYOUT_MARKER} file saying image-layout 1.0.0`);
  const index = files.find((f) => f.name === LAYOUT_INDEX);
  if (index === undefined) throw invalid(`it has no ${LAYOUT_INDEX}`);
  return { files, tag: tagOf(index.data) };
}

/** The one tag of the layout's index.json (the image; referrers are untagged). */
function tagOf(bytes: Buffer): string {
  let parsed;
  try {
    parsed = parseManifest(bytes, MediaTypes.imageIndex);
  } catch (e) {
    if (e instanceof OciError) throw invalid(`its index.json is not an image index: ${e.message}`, e);
    throw e;
  }
  if (parsed.kind !== "index") throw invalid("its index.json is not an image index");
  const tags = parsed.value.manifests.map((d) => d.annotations?.[REF_NAME]).filter((t): t is string => t !== undefined);
  const tag = tags[0];
  if (tags.length !== 1 || tag === undefined) throw invalid(`its index.json tags ${tags.length} manifests; a relayed release tags exactly one (the image)`);
  if (!TAG.test(tag)) throw invalid(`its tag ${JSON.stringify(tag)} is not a valid tag`);
  return tag;
}

/**
 * Writes the checked files under `dir` (which must not exist): names were
 * checked by the reader and above (no traversal, no links, regular files
 * only), and each file is created exclusively, so nothing already there is
 * followed or overwritten. Not fsynced: the directory is scratch, removed
 * after activation; what is kept is written durably by the node's store.
 */
export async function writeLayout(dir: string, layout: RelayedLayout): Promise<void> {
  await mkdir(dir, { mode: 0o700 });
  await mkdir(join(dir, "blobs", "sha256"), { recursive: true, mode: 0o700 });
  for (const f of layout.files) await writeFile(join(dir, f.name), f.data, { flag: "wx", mode: 0o600 });
}

function invalid(why: string, cause?: unknown, details?: Record<string, unknown>): EdgeError {
  return new EdgeError("RELAYED_RELEASE_INVALID", `the relayed segment is not a release this node can read: ${why}; nothing was activated`, {
    ...(cause !== undefined ? { cause } : {}), ...(details !== undefined ? { details } : {}),
  });
}

/** What a relayed release claims to carry; null where it cannot be read. */
export interface RelayedReleaseClaim {
  statementDigest: string | null;
  sequence: number | null;
}

/**
 * The statement digest and sequence a relayed release CLAIMS (its statement
 * referrer's envelope payload), read under the same hostile-input limits and
 * NOT verified: only for the record of a refusal, so an operator can tell
 * which release a peer pushed. Never throws.
 */
export async function describeRelayedRelease(bytes: Uint8Array, maxBytes: number): Promise<RelayedReleaseClaim> {
  const none: RelayedReleaseClaim = { statementDigest: null, sequence: null };
  try {
    const { files } = await readRelayedLayout(bytes, relayedReleaseLimits(maxBytes));
    const blob = (digest: string): Buffer | undefined => files.find((f) => f.name === `blobs/sha256/${digest.replace(/^sha256:/, "")}`)?.data;
    const index = parseManifest(files.find((f) => f.name === LAYOUT_INDEX)?.data ?? Buffer.alloc(0));
    if (index.kind !== "index") return none;
    const referrer = index.value.manifests.find((d) => d.artifactType === MediaTypes.releaseStatement);
    const manifest = referrer === undefined ? undefined : blob(referrer.digest);
    if (manifest === undefined) return none;
    const parsed = parseManifest(manifest);
    const layer = parsed.kind === "manifest" ? parsed.value.layers[0] : undefined;
    const envelope = layer === undefined ? undefined : blob(layer.digest);
    const env = envelope === undefined ? undefined : parseEnvelope(envelope);
    if (env === undefined || typeof env === "string") return none;
    const payload = decodeBase64Strict(env.payload);
    if (payload === undefined) return none;
    const statement = JSON.parse(Buffer.from(payload).toString("utf8")) as { predicate?: { sequence?: unknown } };
    const seq = statement.predicate?.sequence;
    return { statementDigest: sha256Digest(payload), sequence: typeof seq === "number" && Number.isSafeInteger(seq) ? seq : null };
  } catch {
    return none;
  }
}
