import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { CpClientError } from "../../cpapi/index.js";
import type { CpClient, Node } from "../../cpapi/index.js";
import { terminalSafe } from "../../lib/index.js";
import { action } from "../run.js";
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

export function registerNode(program: Command): void {
  const node = program.command("node").description("the fleet's nodes, as a control plane sees them");
  withServerFlags(node.command("list"), { token: "operator token with fleet:read", json: "print a JSON array of nodes (node_id, labels, release_id, boot_epoch, last_seen, last_ack, …)" })
    .description("list the nodes enrolled on a control plane (every page), optionally filtered by labels")
    .option("--label <key=value>", "only nodes with this label; repeat for AND", collectLabel, [])
    .addHelpText("after", "\nText columns: node_id, release_id of the current activation, boot epoch, last heartbeat, last ack (phase and release).")
    .action(
      action(async (flags: NodeListFlags) => {
        const nodes = await listAllNodes(operatorClient(flags, "an operator token with fleet:read"), flags.label);
        if (flags.json) {
          // The contract: a bare JSON array of nodes (not the versioned result object).
          process.stdout.write(`${JSON.stringify(nodes, null, 2)}\n`);
          return;
        }
        const lines = nodes.length === 0 ? ["no nodes"] : ["node_id  release_id  boot_epoch  last_seen  last_ack", ...nodes.map(nodeLine)];
        process.stdout.write(`${lines.map(terminalSafe).join("\n")}\n`);
      }),
    );
}
