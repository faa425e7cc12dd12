/**
 * Packing the node's ACTIVE release into one deterministic archive (a
 * `release` segment): an OCI image layout holding only that release, exactly
 * as the node stored it after verifying it (src/runtime storeVerifiedRelease).
 */
import { LayoutRepository, MediaTypes, childDescriptors, parseManifest } from "../oci/index.js";
import type { Descriptor, OciRepository } from "../oci/index.js";
import { readNodeState, releaseStorePath } from "../node/index.js";
import type { ActivationRecord } from "../node/index.js";
import { decodeBase64Strict, parseEnvelope } from "../sign/index.js";
import { tarGz } from "../archive/index.js";
import type { TarEntry } from "../archive/index.js";
import { sha256Digest } from "../lib/index.js";
import { EDGE_DEFAULTS } from "./config/schema.js";
import { EdgeError } from "./errors.js";

/** What {@link packActiveRelease} returns: the archive and what it carries. */
export interface PackedRelease {
  /** The `.tar.gz` (deterministic: the same active release always packs to the same bytes). */
  bytes: Buffer;
  statementDigest: string;
  sequence: number;
  /** The tag of the image in the packed layout's index.json (`seq-<sequence>`, as in the node's store). */
  tag: string;
}

export const LAYOUT_MARKER = "oci-layout";
export const LAYOUT_INDEX = "index.json";
export const LAYOUT_MARKER_TEXT = JSON.stringify({ imageLayoutVersion: "1.0.0" });
const REF_NAME = "org.opencontainers.image.ref.name";
/** Nesting bound of an image index walk (verification bounds it the same way). */
const MAX_DEPTH = 8;

/**
 * The node's active release packed as one `.tar.gz` OCI layout, or undefined
 * when nothing is active. Only that release: the image graph (manifest,
 * config, layers), and of its referrers in the store the lock and the bundle
 * the activation names, the envelope of the active statement, and cosign
 * signatures if any were stored — never another release's statement (a peer
 * would choose the highest sequence it finds). Every blob is read back through
 * the layout's verified reader, so a store corrupted on disk is not relayed.
 * Deterministic: blobs sorted by digest, index entries in a fixed order,
 * tar and gzip headers pinned (src/archive).
 */
export async function packActiveRelease(stateRoot: string, opts: PackOptions = {}): Promise<PackedRelease | undefined> {
  const active = (await readNodeState(stateRoot)).activation;
  if (active === undefined) return undefined;
  const maxBytes = opts.maxBytes ?? EDGE_DEFAULTS.relay.maxSegmentBytes;
  // Not openReleaseStore: packing must not create anything under the state root.
  const store = new LayoutRepository(releaseStorePath(stateRoot));
  // A peer expands a segment to at most 4x max_segment_bytes (relayedReleaseLimits): more is refused here, before it is read.
  const blobs = new Blobs(4 * maxBytes, active.statement_digest);
  const image = await store.resolve(active.image_digest);
  await collect(store, image, blobs, 0);
  const referrers = await releaseReferrers(store, active);
  for (const r of referrers) await collect(store, r, blobs, 0);
  const tag = `seq-${active.sequence}`;
  const index = {
    schemaVersion: 2, mediaType: MediaTypes.imageIndex,
    manifests: [{ ...descriptorOf(image), annotations: { [REF_NAME]: tag } }, ...referrers.map(descriptorOf)],
  };
  const entries: TarEntry[] = [
    { name: LAYOUT_MARKER, content: Buffer.from(LAYOUT_MARKER_TEXT) },
    { name: LAYOUT_INDEX, content: Buffer.from(JSON.stringify(index)) },
    ...blobs.sorted().map(([d, content]) => ({ name: `blobs/sha256/${d.slice(7)}`, content })),
  ];
  const bytes = tarGz(entries).gz;
  if (bytes.length > maxBytes) throw tooLarge(active.statement_digest, `packs to ${bytes.length} bytes`, maxBytes);
  return { bytes, statementDigest: active.statement_digest, sequence: active.sequence, tag };
}

export interface PackOptions {
  /** The relay's max_segment_bytes: a release that would not fit is refused (SEGMENT_TOO_LARGE) before its blobs are read. Default {@link EDGE_DEFAULTS}.relay.maxSegmentBytes. */
  maxBytes?: number;
}

/** The blobs gathered so far, with a bound on their total size checked before each one is read. */
class Blobs {
  readonly #map = new Map<string, Uint8Array>();
  #total = 0;
  constructor(readonly limit: number, readonly statement: string) {}

  /** Reserves `size` bytes for `digest` (refused past the limit), then stores what `read` returns. */
  async add(digest: string, size: number, read: () => Promise<Uint8Array>): Promise<void> {
    if (this.#map.has(digest)) return;
    if (this.#total + size > this.limit) throw tooLarge(this.statement, `holds more than ${this.limit} bytes of blobs`, this.limit / 4);
    this.#total += size;
    this.#map.set(digest, await read());
  }

  sorted(): [string, Uint8Array][] {
    return [...this.#map.entries()].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  }
}

function tooLarge(statement: string, what: string, maxBytes: number): EdgeError {
  return new EdgeError("SEGMENT_TOO_LARGE", `the active release ${statement} ${what}; a relayed segment may be at most ${maxBytes} bytes ([relay] max_segment_bytes), so it cannot be relayed`, { details: { max_segment_bytes: maxBytes } });
}

/** The index.json entry of a manifest: media type, digest, size and (for referrers) artifactType, nothing else. */
function descriptorOf(d: Descriptor): Descriptor {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.artifactType !== undefined ? { artifactType: d.artifactType } : {}) };
}

/** A manifest and every blob under it (recursively for an index), each read verified against its digest. */
async function collect(store: OciRepository, d: Descriptor, blobs: Blobs, depth: number): Promise<void> {
  if (depth > MAX_DEPTH) throw new EdgeError("RELAYED_RELEASE_INVALID", `the stored release nests image indexes deeper than ${MAX_DEPTH} levels at ${d.digest}`);
  const m = await store.getManifest(d.digest);
  await blobs.add(m.digest, m.bytes.byteLength, () => Promise.resolve(m.bytes));
  const parsed = parseManifest(m.bytes, m.mediaType);
  for (const child of childDescriptors(parsed)) {
    if (parsed.kind === "index") await collect(store, child, blobs, depth + 1);
    else await blobs.add(child.digest, child.size, () => store.getBlob(child.digest, { expectedSize: child.size }));
  }
}

/**
 * The referrers of the active image that belong to the active release: the
 * lock and bundle attachments carrying exactly the digests the activation
 * names, the statement referrer whose envelope is the active statement, and
 * cosign signatures. One of each kind (the lowest digest when the store holds
 * equivalent copies), so the archive does not depend on listing order.
 */
async function releaseReferrers(store: LayoutRepository, a: ActivationRecord): Promise<Descriptor[]> {
  const all = (await store.referrersNative(a.image_digest)).sort((x, y) => (x.digest < y.digest ? -1 : x.digest > y.digest ? 1 : 0));
  const picked: Descriptor[] = [];
  const first = async (type: string, holds: (layers: Descriptor[], s: OciRepository) => boolean | Promise<boolean>, what: string): Promise<void> => {
    for (const r of all.filter((x) => x.artifactType === type)) {
      if (await holds(await layersOf(store, r.digest), store)) {
        picked.push(r);
        return;
      }
    }
    throw new EdgeError("RELAYED_RELEASE_INVALID", `the node's release store has no ${what} for the active release ${a.statement_digest} (image ${a.image_digest}); it cannot be relayed`,
      { hint: "re-activate the release on this node (`autonomy runtime activate`) so its store holds it again" });
  };
  await first(MediaTypes.lock, (l) => l.some((x) => x.digest === a.lock_digest), `lock ${a.lock_digest}`);
  await first(MediaTypes.policyBundle, (l) => l.some((x) => x.digest === a.policy_digest), `policy bundle ${a.policy_digest}`);
  await first(MediaTypes.releaseStatement, async (l, s) => l.length === 1 && (await statementDigestOf(s, l[0] as Descriptor)) === a.statement_digest, "statement envelope");
  picked.push(...all.filter((x) => x.artifactType === MediaTypes.cosignSignatureArtifact));
  return picked;
}

async function layersOf(store: OciRepository, digest: string): Promise<Descriptor[]> {
  const parsed = parseManifest((await store.getManifest(digest)).bytes);
  return parsed.kind === "manifest" ? parsed.value.layers : [];
}

/** The digest of the statement a stored envelope carries (sha256 of its payload, as src/supplychain computes it). */
async function statementDigestOf(store: OciRepository, layer: Descriptor): Promise<string | undefined> {
  const env = parseEnvelope(await store.getBlob(layer.digest, { expectedSize: layer.size }));
  if (typeof env === "string") return undefined;
  const payload = decodeBase64Strict(env.payload);
  return payload === undefined ? undefined : sha256Digest(payload);
}
