import { sleep } from "./wait.js";

/** One agent round, as examples/tutorial-02/release-2/agent/agent.py does it: three sensor readings and one forbidden shell. */
export const AGENT_ROUND = [
  { kind: "tool.echo", params: { text: "reading sensor 0" } },
  { kind: "tool.echo", params: { text: "reading sensor 1" } },
  { kind: "tool.echo", params: { text: "reading sensor 2" } },
  { kind: "tool.shell", params: { command: "id" } },
] as const;

/** What one node's agent saw: answers by `tool=decision`, and calls that got no decision (transport errors, 4xx/5xx other than a deny). */
export interface AgentTally {
  calls: number;
  allowed: number;
  denied: number;
  errors: number;
  byTool: Map<string, number>;
}

export function emptyTally(): AgentTally {
  return { calls: 0, allowed: 0, denied: 0, errors: 0, byTool: new Map() };
}

export function formatTally(t: AgentTally): string {
  return `${t.calls} calls (${[...t.byTool].map(([k, n]) => `${k} ×${n}`).join(", ") || "none"})${t.errors ? `, ${t.errors} errors` : ""}`;
}

/** The policy a node's tool server enforces now (`GET /v1/status`, with the agent's token): `name@version (sha256:…)`. */
export async function livePolicy(url: string, token: string): Promise<string> {
  const res = await fetch(`${url}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json()) as { policy_ref?: unknown };
  return res.status === 200 && typeof body.policy_ref === "string" ? body.policy_ref : `HTTP ${res.status}`;
}

/** One tool call over HTTP with the agent's bearer token, as the agent makes it. */
export async function callTool(url: string, token: string, call: { kind: string; params: Record<string, unknown> }, tally: AgentTally): Promise<void> {
  tally.calls += 1;
  try {
    const res = await fetch(`${url}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify(call) });
    const body = (await res.json()) as { decision?: string };
    const decision = body.decision === "allow" || body.decision === "deny" ? body.decision : undefined;
    if (decision === "allow" && res.status === 200) tally.allowed += 1;
    else if (decision === "deny") tally.denied += 1;
    else tally.errors += 1;
    const key = `${call.kind}=${decision ?? `HTTP ${res.status}`}`;
    tally.byTool.set(key, (tally.byTool.get(key) ?? 0) + 1);
  } catch {
    tally.errors += 1;
  }
}

/** `rounds` agent rounds against one node's tool server. */
export async function agentRounds(url: string, token: string, rounds: number, tally: AgentTally): Promise<void> {
  for (let i = 0; i < rounds; i++) for (const c of AGENT_ROUND) await callTool(url, token, c, tally);
}

/**
 * Agents at work on every node until stopped: one round per node every
 * `pauseMs`. The nodes record each decision (and each tool result) in their
 * own WAL and export it to the control plane, stamped with the release they
 * run: the behaviour gate's evidence. Returns a stop function that resolves
 * once every agent loop has ended.
 */
export function keepAgentsBusy(nodes: readonly { url: string; token: string; tally: AgentTally }[], pauseMs: number): () => Promise<void> {
  const stop = new AbortController();
  const loops = nodes.map(async (n) => {
    while (!stop.signal.aborted) {
      await agentRounds(n.url, n.token, 1, n.tally);
      await sleep(pauseMs, stop.signal);
    }
  });
  return async () => {
    stop.abort();
    await Promise.all(loops);
  };
}
