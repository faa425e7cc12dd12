import { join } from "node:path";
import type { KeyObject } from "node:crypto";
import { createLock, serializeLock } from "../lock/index.js";
import { copyArtifact, formatReference } from "../oci/index.js";
import type { OciRepository, Reference, RepositoryOptions } from "../oci/index.js";
import { buildBundle } from "../policy/index.js";
import { parseEnvelope } from "../sign/index.js";
import { publishStatement, rollbackRelease, signRelease } from "../supplychain/index.js";
import { activateRelease } from "../runtime/index.js";
import { expectRefusal } from "./steps.js";
import type { Record_ } from "./steps.js";

export interface NodeDrillContext {
  dir: string;
  examplesDir: string;
  stateRoot: string;
  record: Record_;
  refOf: (tag: string, repo?: string) => Reference;
  open: (r: Reference) => OciRepository;
  repositoryOptions: RepositoryOptions;
  privateKey: KeyObject;
  /** The signed identity every release carries (the node's trust root names it). */
  repository: string;
  /** The release the node runs: its reference, sequence and the blob digest of its statement envelope. */
  current: { ref: Reference; sequence: number; envelope: string };
}

/**
 * The node's side of the drills, after the node runs release 2 (sequence 2):
 *   - rollback replay: release 1 (the same image, an older bundle, sequence 1), genuinely signed, offered again;
 *   - mix-and-match: release 1's lock, bundle and statement next to release 2's statement copied byte for byte;
 * each must be refused (exit 4) and leave the node on release 2. Then the right way back: release 1's
 * content re-signed under sequence 3 (`autonomy release rollback`), which the node accepts as an upgrade.
 */
export async function nodeDrills(c: NodeDrillContext): Promise<void> {
  const older = await releaseOne(c);
  const activate = (ref: Reference): Promise<unknown> => activateRelease({ ref, stateRoot: c.stateRoot, repositoryOptions: c.repositoryOptions });
  await expectRefusal(`rollback drill: sequence 1's statement replayed after sequence ${c.current.sequence}`, activate(older), c.record);

  const mixRef = c.refOf("v1", "drill-mix");
  const mix = c.open(mixRef);
  const copied = await copyArtifact(c.open(older), "v1", mix, "v1", { referrers: true });
  const envelope = parseEnvelope(await c.open(c.current.ref).getBlob(c.current.envelope));
  if (typeof envelope === "string") throw new Error(`release ${c.current.sequence}'s statement envelope is unreadable: ${envelope}`);
  await publishStatement(mix, await mix.resolve(copied.digest), envelope);
  await expectRefusal(`mix-and-match drill: release 1's lock and bundle with release ${c.current.sequence}'s statement`, activate(mixRef), c.record);

  const target = c.refOf("current");
  const back = await rollbackRelease({
    older: { repo: c.open(older), target: "v1" }, target: { repo: c.open(target), ref: target },
    keys: [c.privateKey], sequence: c.current.sequence + 1, repository: c.repository, now: new Date(),
  });
  const p = back.signed.statement.predicate;
  c.record("rollback as a new release", `release 1's content re-signed as sequence ${p.sequence} at ${formatReference(target)} (policy ${p.policy_bundle.name}@${p.policy_bundle.version})`);
  const done = await activateRelease({ ref: target, stateRoot: c.stateRoot, repositoryOptions: c.repositoryOptions });
  c.record("activate rollback", `sequence ${done.activation.sequence} accepted as an upgrade; policy ${done.policyRef}`, done.changed && done.activation.sequence === p.sequence);
}

/** Release 1: the same image with an older policy bundle (quickstart-policy@0.9.0), signed at sequence 1 in its own repository. */
async function releaseOne(c: NodeDrillContext): Promise<Reference> {
  const ref = c.refOf("v1", "drill-rollback");
  const repo = c.open(ref);
  const image = await copyArtifact(c.open(c.current.ref), referenceTag(c.current.ref), repo, "v1", { referrers: false });
  const bundle = await buildBundle(join(c.examplesDir, "policies"), { name: "quickstart-policy", version: "0.9.0", runtimeVersion: ">=0.1.0 <1.0.0" });
  const lock = await createLock({ agentImageRef: formatReference(ref), agentDigest: image.digest, policyBundleRef: "quickstart-policy:0.9.0", policyBundleDigest: bundle.digest });
  await signRelease(repo, ref, {
    keys: [c.privateKey], now: new Date(), sequence: 1, repository: c.repository,
    lock: new TextEncoder().encode(serializeLock(lock)), bundle: { bytes: bundle.bytes, name: "quickstart-policy", version: "0.9.0" },
  });
  return ref;
}

function referenceTag(ref: Reference): string {
  return ref.digest ?? ref.tag ?? "latest";
}
