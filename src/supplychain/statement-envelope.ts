import { MediaTypes, OciError, cosignAttestationTag, parseManifest, readReferrerSources } from "../oci/index.js";
import type { Descriptor, OciRepository } from "../oci/index.js";
import { parseEnvelope } from "../sign/index.js";
import type { DsseEnvelope } from "../sign/index.js";
import { sha256Digest } from "../lib/index.js";
import { MAX_STATEMENT_CANDIDATES } from "./find-statements.js";
import { MAX_STATEMENT_BYTES } from "./statement.js";

/** The stored envelope of one already verified statement: the blob it is in and the envelope itself. */
export interface StatementEnvelope {
  /** The envelope blob's descriptor (as the registry lists it). */
  layer: Descriptor;
  envelope: DsseEnvelope;
  /** The manifest (digest, or the `.att` tag) it was found in. */
  manifest: string;
  /** The envelope blob's exact bytes. */
  bytes: Uint8Array;
}

/**
 * Finds the DSSE envelope whose signed payload is exactly the statement
 * `statementDigest` names (sha256 of the statement bytes), reading the same
 * paths and bounds as verification (statement referrers, then the `.att` tag;
 * at most {@link MAX_STATEMENT_CANDIDATES} manifests and envelopes, each
 * envelope at most {@link MAX_STATEMENT_BYTES}). The payload digest identifies
 * the statement, so junk beside it is never returned; `undefined` when none is
 * found within the bounds.
 */
export async function findStatementEnvelope(repo: OciRepository, subject: string, statementDigest: string): Promise<StatementEnvelope | undefined> {
  const { found } = await readReferrerSources(repo, subject);
  const refs = found.filter((r) => r.artifactType === MediaTypes.releaseStatement).map((r) => r.digest);
  refs.push(cosignAttestationTag(subject));
  let read = 0;
  for (const ref of refs.slice(0, MAX_STATEMENT_CANDIDATES)) {
    for (const layer of await dsseLayers(repo, ref)) {
      if (read >= MAX_STATEMENT_CANDIDATES) return undefined;
      read += 1;
      const got = await envelopeOf(repo, layer);
      if (got !== undefined && sha256Digest(Buffer.from(got.envelope.payload, "base64")) === statementDigest) return { layer, manifest: ref, ...got };
    }
  }
  return undefined;
}

async function dsseLayers(repo: OciRepository, ref: string): Promise<Descriptor[]> {
  try {
    const m = await repo.getManifest(ref);
    const parsed = parseManifest(m.bytes, m.mediaType);
    return parsed.kind === "manifest" ? parsed.value.layers.filter((l) => l.mediaType === MediaTypes.dsseEnvelope && l.size <= MAX_STATEMENT_BYTES) : [];
  } catch (e) {
    // Unreadable or absent candidates are skipped, as verification skips them.
    if (e instanceof OciError) return [];
    throw e;
  }
}

async function envelopeOf(repo: OciRepository, layer: Descriptor): Promise<{ envelope: DsseEnvelope; bytes: Uint8Array } | undefined> {
  try {
    const bytes = await repo.getBlob(layer.digest, { expectedSize: layer.size });
    const env = parseEnvelope(bytes);
    return typeof env === "string" ? undefined : { envelope: env, bytes };
  } catch (e) {
    if (e instanceof OciError) return undefined;
    throw e;
  }
}
