import { z } from "zod";
import { writeFileAtomic } from "../lib/index.js";
import { NodeId, ReleaseId } from "../cpapi/index.js";
import { stateRootPaths } from "./layout.js";
import { parseNodeFile, readOptionalText } from "./json-file.js";

/**
 * `control-plane.json`: which control plane this node enrolled with, as which
 * node, and its node credential (a bearer secret: the file is mode 0600 and
 * its content is never logged). Also the release the control plane offered
 * that this node last activated, so a heartbeat can name it: the node state
 * records the statement, the control plane names releases by id.
 * The control plane is advisory: nothing here widens what the node trusts.
 */
const controlPlaneSchema = z.strictObject({
  version: z.literal(1),
  /** The base URL enrolled with (no credentials in it). */
  server: z.string().url().max(2048),
  node_id: NodeId,
  credential: z.string().min(1).max(4096),
  enrolled_at: z.string().min(1),
  /** The control plane's release id of the last release this node activated from it, and that release's statement digest. */
  activated_release: z.strictObject({ release_id: ReleaseId, statement_digest: z.string().regex(/^sha256:[a-f0-9]{64}$/) }).optional(),
});
export type ControlPlaneFile = z.infer<typeof controlPlaneSchema>;

/** The node's enrollment, or undefined when it never enrolled. Unreadable or malformed fails hard (CONTROL_PLANE_STATE_INVALID). */
export async function readControlPlane(stateRoot: string): Promise<ControlPlaneFile | undefined> {
  const path = stateRootPaths(stateRoot).controlPlane;
  const raw = await readOptionalText(path, "CONTROL_PLANE_STATE_INVALID");
  return raw === undefined ? undefined : parseNodeFile(path, raw, controlPlaneSchema, "CONTROL_PLANE_STATE_INVALID");
}

/** Replaces the file durably (temp → fsync → rename → fsync dir), mode 0600: it holds the node credential. */
export async function writeControlPlane(stateRoot: string, doc: ControlPlaneFile): Promise<void> {
  const checked = controlPlaneSchema.parse(doc);
  await writeFileAtomic(stateRootPaths(stateRoot).controlPlane, `${JSON.stringify(checked, null, 2)}\n`, 0o600);
}
