import { OciError } from "./errors.js";

/**
 * A parsed artifact reference. Two spellings, as skopeo and docker spell them:
 *   oci:DIR[:TAG|@sha256:…]              an OCI image-layout directory
 *   HOST[:PORT]/REPO[:TAG|@sha256:…]     a distribution registry
 * A reference may carry a tag, a digest, both, or neither (then tag "latest").
 */
export type Reference = LayoutReference | RegistryReference;

export interface LayoutReference {
  kind: "layout";
  dir: string;
  tag?: string;
  digest?: string;
}

export interface RegistryReference {
  kind: "registry";
  /** host[:port], e.g. `127.0.0.1:5000` or `ghcr.io`. */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const REPO_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST_RE = /^(?:localhost|\[[0-9a-fA-F:]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?$/;

function invalid(input: string, why: string): OciError {
  return new OciError(
    "OCI_REFERENCE_INVALID",
    `invalid reference "${input}": ${why}`,
    "use oci:DIR[:TAG] for an image layout or HOST[:PORT]/REPO[:TAG|@sha256:<64 hex>] for a registry",
  );
}

function splitDigest(input: string, s: string): { rest: string; digest?: string } {
  const at = s.lastIndexOf("@");
  if (at < 0) return { rest: s };
  const digest = s.slice(at + 1);
  if (!DIGEST_RE.test(digest)) throw invalid(input, `"${digest}" is not a sha256:<64 lowercase hex> digest`);
  return { rest: s.slice(0, at), digest };
}

function checkTag(input: string, tag: string): string {
  if (!TAG_RE.test(tag)) throw invalid(input, `"${tag}" is not a valid tag`);
  return tag;
}

export function parseReference(input: string): Reference {
  if (input.length === 0 || input.length > 4096) throw invalid(input, "empty or too long");
  if (/[\s\0]/.test(input)) throw invalid(input, "contains whitespace or NUL");
  if (input.startsWith("oci:")) return parseLayout(input);
  return parseRegistry(input);
}

function parseLayout(input: string): LayoutReference {
  const { rest, digest } = splitDigest(input, input.slice(4));
  // skopeo: oci:PATH[:REFERENCE]; the last colon separates the tag when the tail is a valid tag.
  let dir = rest;
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > 0 && !rest.slice(colon + 1).includes("/")) {
    dir = rest.slice(0, colon);
    tag = checkTag(input, rest.slice(colon + 1));
  }
  if (dir.length === 0) throw invalid(input, "the directory is empty");
  const ref: LayoutReference = { kind: "layout", dir };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

function parseRegistry(input: string): RegistryReference {
  const { rest, digest } = splitDigest(input, input);
  const slash = rest.indexOf("/");
  if (slash <= 0) throw invalid(input, "a registry reference needs HOST/REPO");
  const registry = rest.slice(0, slash);
  if (!HOST_RE.test(registry)) throw invalid(input, `"${registry}" is not a host[:port]`);
  let path = rest.slice(slash + 1);
  let tag: string | undefined;
  const colon = path.lastIndexOf(":");
  if (colon >= 0) {
    tag = checkTag(input, path.slice(colon + 1));
    path = path.slice(0, colon);
  }
  if (path.length === 0 || path.length > 255) throw invalid(input, "the repository name is empty or too long");
  for (const part of path.split("/")) {
    if (!REPO_COMPONENT_RE.test(part)) throw invalid(input, `repository component "${part}" must be lowercase [a-z0-9] separated by . _ __ or -`);
  }
  const ref: RegistryReference = { kind: "registry", registry, repository: path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The tag-or-digest to fetch: digest wins (it is immutable), then tag, then "latest". */
export function referenceTarget(ref: Reference): string {
  return ref.digest ?? ref.tag ?? "latest";
}

/** Canonical spelling, e.g. for messages and the simple-signing docker-reference. */
export function formatReference(ref: Reference): string {
  const base = ref.kind === "layout" ? `oci:${ref.dir}` : `${ref.registry}/${ref.repository}`;
  return `${base}${ref.tag !== undefined ? `:${ref.tag}` : ""}${ref.digest !== undefined ? `@${ref.digest}` : ""}`;
}

/** The repository part without tag or digest (cosign's docker-reference identity). */
export function repositoryName(ref: Reference): string {
  return ref.kind === "layout" ? `oci:${ref.dir}` : `${ref.registry}/${ref.repository}`;
}

/** A copy of `ref` pointing at `digest` (tag kept for messages). */
export function withDigest<R extends Reference>(ref: R, digest: string): R {
  return { ...ref, digest };
}

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}
