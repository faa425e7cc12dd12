import canonicalize from "canonicalize";
import type { Envelope, PublishReleaseRequest } from "../../cpapi/index.js";
import { sha256Digest } from "../../lib/index.js";
import { parseReference } from "../../oci/index.js";
import type { DsseEnvelope, TrustedKey } from "../../sign/index.js";
import { IN_TOTO_PAYLOAD_TYPE, StatementRejected, openStatement, parseStatementBytes } from "../../supplychain/index.js";
import type { ReleasePredicate } from "../../supplychain/index.js";
import { OrchestratorError, RequestInvalid } from "../errors.js";

/** What the control plane reads out of a publish request (nothing here is verified: releases are advisory). */
export interface ReadRelease {
  release_id: string;
  predicate: ReleasePredicate;
  /** sha256 of the statement bytes (the payload): equal digests are the same statement. */
  statement_digest: string;
  /** The envelope as canonical JSON (RFC 8785), the form stored and hashed. */
  envelope_json: string;
}

/** The release keys `autonomy serve --release-key` trusts, and how many must have signed. */
export interface PublishTrust {
  keys: readonly TrustedKey[];
  threshold: number;
}

const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * `rel-` + the first 16 hex digits of the SHA-256 of the envelope in canonical
 * JSON (RFC 8785): the same envelope, however it was spaced or ordered on the
 * wire, is the same release id.
 */
export function releaseIdOf(envelope: Envelope): { id: string; json: string } {
  const json = canonicalize(envelope);
  if (json === undefined) throw new RequestInvalid("invalid body: statement: not representable as canonical JSON");
  return { id: `rel-${sha256Digest(json).slice("sha256:".length, "sha256:".length + 16)}`, json };
}

/**
 * Reads the statement of a publish request WITHOUT verifying signatures (a
 * node verifies before it activates anything). Refuses what cannot be a
 * consistent release: a payload that is not an in-toto release statement
 * (RELEASE_STATEMENT_INVALID), a body channel other than the statement's
 * (RELEASE_CHANNEL_MISMATCH), an image reference whose digest is not the
 * statement's image digest (RELEASE_IMAGE_MISMATCH), a registry image outside
 * the statement's repository (400 naming `image`).
 */
export function readPublishRequest(body: PublishReleaseRequest, trust?: PublishTrust): ReadRelease {
  const env = body.statement;
  if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
    throw new OrchestratorError("RELEASE_STATEMENT_INVALID", `statement.payloadType is ${JSON.stringify(env.payloadType.slice(0, 64))}, not ${IN_TOTO_PAYLOAD_TYPE}`);
  }
  if (!BASE64_RE.test(env.payload)) throw new OrchestratorError("RELEASE_STATEMENT_INVALID", "statement.payload is not standard base64");
  const bytes = Buffer.from(env.payload, "base64");
  let predicate: ReleasePredicate;
  if (trust) {
    try {
      // Configured release keys: the control plane stops being advisory about ordering, so only a statement a
      // threshold of them signed may take a (channel, sequence) — a publisher token alone cannot squat one.
      predicate = openStatement(env as DsseEnvelope, trust.keys, trust.threshold).predicate;
    } catch (e) {
      if (e instanceof StatementRejected) throw new OrchestratorError("RELEASE_SIGNATURE_UNTRUSTED", `statement: ${e.reason} (this control plane accepts only statements signed by ${trust.threshold} of its ${trust.keys.length} --release-key key(s))`);
      throw e;
    }
  }
  try {
    predicate ??= parseStatementBytes(bytes);
  } catch (e) {
    if (e instanceof StatementRejected) throw new OrchestratorError("RELEASE_STATEMENT_INVALID", `statement.payload: ${e.reason}`);
    throw e;
  }
  if (predicate.channel !== body.channel) {
    throw new OrchestratorError("RELEASE_CHANNEL_MISMATCH", `channel is ${body.channel} but the statement is for channel ${predicate.channel}`);
  }
  checkImage(body.image, predicate.image.digest, predicate.repository);
  const { id, json } = releaseIdOf(env);
  return { release_id: id, predicate, statement_digest: sha256Digest(bytes), envelope_json: json };
}

/**
 * The image must be the statement's: its digest (when it names one) the
 * statement's image digest, and — for a registry reference — its
 * `host/path` the statement's signed `repository`, so a publisher cannot point
 * nodes at a copy in another registry (the node refuses it too; this keeps the
 * CP from advertising it). An OCI layout reference (oci:<dir>) has no
 * repository identity and is checked by digest only.
 */
function checkImage(image: string, statementDigest: string, repository: string): void {
  let ref: ReturnType<typeof parseReference>;
  try {
    ref = parseReference(image);
  } catch (e) {
    throw new RequestInvalid(`invalid body: image: ${e instanceof Error ? e.message : "not an image reference"}`);
  }
  if (ref.kind === "registry" && `${ref.registry}/${ref.repository}` !== repository) {
    throw new RequestInvalid(`invalid body: image: ${ref.registry}/${ref.repository} is not the statement's repository ${repository} (publish the image where the statement says nodes pull it)`);
  }
  const digest = ref.digest;
  if (digest !== undefined && digest !== statementDigest) {
    throw new OrchestratorError("RELEASE_IMAGE_MISMATCH", `image names digest ${digest} but the statement's image digest is ${statementDigest}`);
  }
}
