import { hostname } from "node:os";
import { CpClient, CpClientError, NodeId } from "../../cpapi/index.js";
import { isoTime, redactUrl, systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { readControlPlane, writeControlPlane } from "../../node/index.js";
import type { ControlPlaneFile } from "../../node/index.js";
import { RuntimeError } from "../errors.js";
import { isLoopbackHost } from "../listen.js";

export interface EnrollOptions {
  stateRoot: string;
  /** The control plane's base URL (`--server`). */
  server: string;
  /** Single-use enrollment token; needed only on the first start. */
  enrollToken?: string;
  /** Default: derived from the host name ({@link defaultNodeId}). */
  nodeId?: string;
  timeoutMs?: number;
  clock?: Clock;
  /** Allow `http://` to a control plane off loopback (`--server-plain-http`): the enrollment token and node credential then travel in clear text. */
  plainHttp?: boolean;
  /** PEM of the private CA that issued the control plane's certificate (`--server-ca`). */
  ca?: string;
}

export interface Enrollment {
  /** A client authenticated with the node credential. */
  client: CpClient;
  nodeId: string;
  file: ControlPlaneFile;
  /** True when this call enrolled the node (first start). */
  enrolled: boolean;
}

/**
 * The node's identity on the control plane: reused from `control-plane.json`
 * when the node enrolled before (no call to the control plane, so a node
 * starts while it is down), else enrolled now with the single-use token and
 * the credential stored durably (0600) before it is used.
 */
export async function ensureEnrolled(o: EnrollOptions): Promise<Enrollment> {
  const clock = o.clock ?? systemClock;
  const base = new CpClient({ baseUrl: o.server, clock, ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}), ...(o.ca !== undefined ? { ca: o.ca } : {}) });
  checkTransport(base.baseUrl, o.plainHttp === true);
  const stored = await readControlPlane(o.stateRoot);
  if (stored !== undefined) {
    if (!sameServer(stored.server, base.baseUrl.href)) {
      throw new RuntimeError("NODE_SERVER_MISMATCH", `this node is enrolled with ${redactUrl(stored.server)}, not ${redactUrl(base.baseUrl)}`);
    }
    if (o.nodeId !== undefined && o.nodeId !== stored.node_id) {
      throw new RuntimeError("NODE_SERVER_MISMATCH", `this node is enrolled as ${stored.node_id}, not ${o.nodeId}`, { hint: "drop --node-id (the enrolled id is kept), or move control-plane.json away and enroll again" });
    }
    return { client: base.withToken(stored.credential), nodeId: stored.node_id, file: stored, enrolled: false };
  }
  if (o.enrollToken === undefined) throw new RuntimeError("NODE_NOT_ENROLLED", `this node has not enrolled with ${redactUrl(base.baseUrl)} yet and no --enroll-token was given`);
  const nodeId = o.nodeId ?? defaultNodeId();
  if (!NodeId.safeParse(nodeId).success) throw new RuntimeError("NODE_ID_INVALID", `node id ${JSON.stringify(nodeId.slice(0, 80))} is not valid`);
  let credential: string;
  try {
    const r = await base.enroll(o.enrollToken, { node_id: nodeId });
    if (r.node_id !== nodeId) throw new RuntimeError("NODE_ENROLLMENT_REFUSED", `the control plane enrolled this node as ${r.node_id}, not ${nodeId} (the enrollment token is pinned to that id)`, { hint: `start with --node-id ${r.node_id}, or ask for a token for ${nodeId}` });
    credential = r.credential;
  } catch (e) {
    throw refusal(e);
  }
  const file: ControlPlaneFile = { version: 1, server: base.baseUrl.href, node_id: nodeId, credential, enrolled_at: isoTime(clock) };
  await writeControlPlane(o.stateRoot, file);
  return { client: base.withToken(credential), nodeId, file, enrolled: true };
}

/**
 * The runtime's listener rule, for the node as a client: bearer secrets (the
 * enrollment token, the node credential) go over https, or http to loopback;
 * plain http elsewhere only when the operator said so (`--server-plain-http`).
 * Checked before any request, and before a stored credential is used.
 */
export function checkTransport(url: URL, plainHttp: boolean): void {
  if (url.protocol !== "http:" || plainHttp || isLoopbackHost(url.hostname)) return;
  throw new RuntimeError("CP_PLAIN_HTTP_REFUSED", `refusing to send the node's enrollment token or credential to ${redactUrl(url)} over plain http: it is not a loopback address`);
}

/** A wrong, expired or spent token is refused with a 4xx: one line and a hint. Transport failures stay CP_REQUEST_FAILED. */
function refusal(e: unknown): unknown {
  if (e instanceof CpClientError && e.code === "CP_REQUEST_REJECTED" && e.status !== null && e.status >= 400 && e.status < 500) {
    // The server's hint says what to do about its own codes (a pinned id, a taken id); a bad token gets ours.
    const serverHint = e.problemCode !== null && e.problemCode !== "ENROLLMENT_TOKEN_INVALID" ? { hint: e.hint } : {};
    return new RuntimeError("NODE_ENROLLMENT_REFUSED", `the control plane refused the enrollment (${e.status}${e.problemCode ? ` ${e.problemCode}` : ""}): ${e.detail}`, { cause: e, ...serverHint });
  }
  return e;
}

/** The same control plane: equal URLs up to trailing slashes. */
export function sameServer(a: string, b: string): boolean {
  const norm = (u: string): string => new URL(u).href.replace(/\/+$/, "");
  return norm(a) === norm(b);
}

/** The host name as a valid node id: lower-cased, other characters → `-`, at most 63, starting with a letter or digit. */
export function defaultNodeId(host: string = hostname()): string {
  const id = host.toLowerCase().replace(/[^a-z0-9._-]/g, "-").replace(/^[^a-z0-9]+/, "").slice(0, 63);
  return id === "" ? "node" : id;
}
