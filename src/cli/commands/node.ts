import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { CpClientError } from "../../cpapi/index.js";
import type { CpClient, Node } from "../../cpapi/index.js";
import { UsageError, terminalSafe } from "../../lib/index.js";
import { parseDuration } from "../../sign/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";
import { operatorClient, withServerFlags } from "../common.js";
import type { ServerFlags } from "../common.js";

/** `k=v`, repeatable: every selector must match (AND). */
function collectLabel(v: string, prev: string[]): string[] {
  const eq = v.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError("expected key=value (e.g. --label site=berlin)");
  return [...prev, v];
}

interface NodeListFlags extends ServerFlags {
  label: string[];
}

/** Pages the server may answer before we call it a loop (1,000 nodes a page: a million nodes). */
const MAX_PAGES = 1000;

/** Every node matching the selectors, following next_cursor to the end. */
export async function listAllNodes(client: CpClient, label: readonly string[]): Promise<Node[]> {
  const nodes: Node[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const r = await client.listNodes({ label, limit: 1000, ...(cursor !== undefined ? { cursor } : {}) });
    nodes.push(...r.nodes);
    if (r.next_cursor === null) return nodes;
    if (r.next_cursor === cursor) break;
    cursor = r.next_cursor;
  }
  const detail = `the control plane kept answering pages after ${nodes.length} nodes (a cursor that does not advance)`;
  throw new CpClientError("CP_RESPONSE_INVALID", detail, { detail });
}

function nodeLine(n: Node): string {
  const ack = n.last_ack ? `${n.last_ack.phase} ${n.last_ack.release_id}` : "-";
  return [n.node_id, n.release_id ?? "-", n.boot_epoch === null ? "-" : String(n.boot_epoch), n.last_seen ?? "never", ack].join("  ");
}

interface EnrollTokenFlags extends ServerFlags {
  nodeId?: string;
  label: string[];
  ttl: string;
}

/** `k=v` pairs into the labels object the enrollment token pins (a key given twice is a mistake, not a silent overwrite). */
function labelsOf(pairs: readonly string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf("=");
    const k = p.slice(0, eq);
    if (k in labels) throw new UsageError(`--label ${k} given twice`, "give each label key once");
    labels[k] = p.slice(eq + 1);
  }
  return labels;
}

/** --ttl as whole seconds within what the server accepts (1 minute to 30 days). */
function ttlSeconds(v: string): number {
  const ms = parseDuration(v);
  if (ms < 60_000 || ms > 30 * 86_400_000) throw new UsageError(`--ttl ${v} is outside 1m..30d`, "an enrollment token lives from 1 minute to 30 days, e.g. --ttl 1h");
  return Math.floor(ms / 1000);
}

function registerEnrollToken(node: Command): void {
  withServerFlags(node.command("enroll-token"), { token: "operator token with node:enroll (owner)" })
    .description("make a single-use enrollment token for one node (the secret is printed once); the node spends it with `autonomy runtime start --server URL` and AUTONOMY_ENROLL_TOKEN")
    .option("--node-id <id>", "pin the node id the token may enroll (recommended)")
    .option("--label <key=value>", "a label the node gets (the ONLY labels it gets: rollout selectors trust them); repeat", collectLabel, [])
    .option("--ttl <duration>", "how long the token may be spent, 1m..30d", "24h")
    .action(
      action(async (flags: EnrollTokenFlags) => {
        const labels = labelsOf(flags.label);
        const created = await operatorClient(flags, "an owner token (node:enroll)").createEnrollmentToken({
          ttl_seconds: ttlSeconds(flags.ttl),
          ...(flags.nodeId !== undefined ? { node_id: flags.nodeId } : {}),
          ...(flags.label.length > 0 ? { labels } : {}),
        });
        emit({ ok: true, ...created }, flags, (c) => `${c.token}\n(single use, ${c.node_id === null ? "any node id" : `node ${c.node_id}`}, expires ${c.expires_at}; shown once)`);
      }),
    );
}

function registerRevoke(node: Command): void {
  withServerFlags(node.command("revoke <node_id>"), { token: "operator token with token:manage (owner)" })
    .description("revoke every credential of a node: its next request gets 401 and it must enroll again with a new enrollment token")
    .action(
      action(async (nodeId: string, flags: ServerFlags) => {
        const r = await operatorClient(flags, "an owner token (token:manage)").revokeNodeCredential(nodeId);
        emit({ ok: true, ...r }, flags, (x) => `revoked ${x.revoked} credential(s) of node ${x.node_id}`);
      }),
    );
}

export function registerNode(program: Command): void {
  const node = program.command("node").description("the fleet's nodes, as a control plane sees them");
  registerEnrollToken(node);
  registerRevoke(node);
  withServerFlags(node.command("list"), { token: "operator token with fleet:read", json: "print a JSON array of nodes (node_id, labels, release_id, boot_epoch, last_seen, last_ack, …)" })
    .description("list the nodes enrolled on a control plane (every page), optionally filtered by labels")
    .option("--label <key=value>", "only nodes with this label; repeat for AND", collectLabel, [])
    .addHelpText("after", "\nText columns: node_id, release_id of the current activation, boot epoch, last heartbeat, last ack (phase and release).")
    .action(
      action(async (flags: NodeListFlags) => {
        const nodes = await listAllNodes(operatorClient(flags, "an operator token with fleet:read"), flags.label);
        if (flags.json) {
          // The issue's contract: a bare JSON array of nodes (not the versioned result object).
          process.stdout.write(`${JSON.stringify(nodes, null, 2)}\n`);
          return;
        }
        const lines = nodes.length === 0 ? ["no nodes"] : ["node_id  release_id  boot_epoch  last_seen  last_ack", ...nodes.map(nodeLine)];
        process.stdout.write(`${lines.map(terminalSafe).join("\n")}\n`);
      }),
    );
}
