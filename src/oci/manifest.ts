import { OciError } from "./errors.js";
import { MANIFEST_MEDIA_TYPES, MediaTypes } from "./types.js";
import type { Descriptor, ImageIndex, ImageManifest } from "./types.js";
import { isSha256Digest, quote, sha256Digest } from "../lib/index.js";

/** Manifests larger than this are refused before parsing (the distribution spec's own limit). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export type ParsedManifest =
  | { kind: "manifest"; mediaType: string; value: ImageManifest }
  | { kind: "index"; mediaType: string; value: ImageIndex };

function bad(what: string, why: string): OciError {
  return new OciError("OCI_MANIFEST_INVALID", `${what}: ${why}`, "the artifact is malformed; re-push it from a trusted source");
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Validates one descriptor as attacker-controlled input. */
export function assertDescriptor(v: unknown, where: string): asserts v is Descriptor {
  if (!isRecord(v)) throw bad(where, "descriptor is not an object");
  if (typeof v.mediaType !== "string" || v.mediaType.length === 0 || v.mediaType.length > 255) throw bad(where, "descriptor mediaType missing or invalid");
  if (typeof v.digest !== "string" || !isSha256Digest(v.digest)) throw bad(where, `descriptor digest ${JSON.stringify(v.digest)} is not sha256:<64 hex>`);
  if (typeof v.size !== "number" || !Number.isSafeInteger(v.size) || v.size < 0) throw bad(where, "descriptor size is not a non-negative integer");
  if (v.annotations !== undefined && !isStringMap(v.annotations)) throw bad(where, "descriptor annotations must map strings to strings");
  if (v.artifactType !== undefined && typeof v.artifactType !== "string") throw bad(where, "descriptor artifactType must be a string");
}

function isStringMap(v: unknown): v is Record<string, string> {
  return isRecord(v) && Object.values(v).every((x) => typeof x === "string");
}

/**
 * Parses manifest bytes. `declaredType` is what the store said (Content-Type or
 * index.json); the body's own mediaType must agree when both are present.
 */
export function parseManifest(bytes: Uint8Array, declaredType?: string): ParsedManifest {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) throw bad("manifest", `larger than ${MAX_MANIFEST_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw bad("manifest", "not valid UTF-8 JSON");
  }
  if (!isRecord(doc)) throw bad("manifest", "not a JSON object");
  if (doc.schemaVersion !== 2) throw bad("manifest", "schemaVersion must be 2");
  const mediaType = typeof doc.mediaType === "string" ? doc.mediaType : declaredType;
  if (mediaType === undefined) throw bad("manifest", "no mediaType in the manifest or from the store");
  if (declaredType !== undefined && typeof doc.mediaType === "string" && declaredType !== doc.mediaType && MANIFEST_MEDIA_TYPES.includes(declaredType)) {
    throw bad("manifest", `store says ${quote(declaredType)} but the manifest says ${quote(doc.mediaType)}`);
  }
  if (!MANIFEST_MEDIA_TYPES.includes(mediaType)) {
    throw new OciError("OCI_MEDIA_TYPE_UNKNOWN", `unknown manifest media type ${quote(mediaType)}`, `supported: ${MANIFEST_MEDIA_TYPES.join(", ")}`);
  }
  if (doc.subject !== undefined) assertDescriptor(doc.subject, "manifest subject");
  if (mediaType === MediaTypes.imageIndex || mediaType === MediaTypes.dockerManifestList) {
    if (!Array.isArray(doc.manifests)) throw bad("index", "manifests must be an array");
    doc.manifests.forEach((d, i) => assertDescriptor(d, `index manifests[${i}]`));
    return { kind: "index", mediaType, value: doc as unknown as ImageIndex };
  }
  assertDescriptor(doc.config, "manifest config");
  if (!Array.isArray(doc.layers)) throw bad("manifest", "layers must be an array");
  doc.layers.forEach((d, i) => assertDescriptor(d, `manifest layers[${i}]`));
  return { kind: "manifest", mediaType, value: doc as unknown as ImageManifest };
}

/** Serializes a manifest or index deterministically and returns bytes + digest + descriptor. */
export function encodeManifest(value: ImageManifest | ImageIndex): { bytes: Uint8Array; digest: string; descriptor: Descriptor } {
  const bytes = new TextEncoder().encode(JSON.stringify(value));
  const digest = sha256Digest(bytes);
  const descriptor: Descriptor = { mediaType: value.mediaType, digest, size: bytes.byteLength };
  if (value.artifactType !== undefined) descriptor.artifactType = value.artifactType;
  return { bytes, digest, descriptor };
}

/** The artifactType of a manifest as the referrers API reports it (OCI 1.1 §referrers). */
export function effectiveArtifactType(m: ParsedManifest): string {
  if (m.value.artifactType !== undefined) return m.value.artifactType;
  return m.kind === "manifest" ? m.value.config.mediaType : "";
}

/** Every descriptor a manifest points at (config + layers, or child manifests). */
export function childDescriptors(m: ParsedManifest): Descriptor[] {
  return m.kind === "manifest" ? [m.value.config, ...m.value.layers] : [...m.value.manifests];
}
