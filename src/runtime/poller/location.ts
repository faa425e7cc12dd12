import type { Release } from "../../cpapi/index.js";
import { parseReference, repositoryName } from "../../oci/index.js";
import type { Reference } from "../../oci/index.js";
import type { TrustRoot } from "../../node/index.js";
import { RuntimeError } from "../errors.js";

/**
 * Where the node pulls a release the control plane offers: the repository its
 * own trust root names, at the digest the control plane gave, never a place the
 * control plane chose. The control plane is not trusted for integrity, and the
 * node's registry credentials go with every pull: a release whose `image`
 * names another repository, host or local path is refused here, before any
 * byte is fetched (RELEASE_LOCATION_UNTRUSTED, a verification failure, so it
 * is acked and remembered, not retried). The message names neither the
 * offered location nor the node's own: both travel back in the ack.
 */
export function pullReference(r: Release, trust: TrustRoot): Reference {
  const trusted = parseReference(trust.repository);
  let offered: Reference | undefined;
  try {
    offered = parseReference(r.image);
  } catch {
    offered = undefined;
  }
  if (offered === undefined || repositoryName(offered) !== repositoryName(trusted)) {
    throw new RuntimeError("RELEASE_LOCATION_UNTRUSTED", `release ${r.release_id} names an image outside the repository this node's trust root follows; it was not fetched`, {
      details: { release_id: r.release_id, image_digest: r.image_digest },
    });
  }
  if (offered.digest !== undefined && offered.digest !== r.image_digest) {
    throw new RuntimeError("RELEASE_LOCATION_UNTRUSTED", `release ${r.release_id} names two image digests (${offered.digest} in image, ${r.image_digest} in image_digest); it was not fetched`, {
      details: { release_id: r.release_id, image_digest: r.image_digest },
    });
  }
  // Only the digest is taken from the control plane: the tag it names is not used.
  const pull: Reference = { ...trusted, digest: r.image_digest };
  delete pull.tag;
  return pull;
}
