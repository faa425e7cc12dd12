/**
 * The WAL exporter against the REAL control plane (buildApp over SQLite on
 * loopback, the node credential from a real enrollment): events arrive as
 * cpapi IngestEvents with ids `<node>:wal:<generation>:<seq>` and the types
 * the behaviour gates read; a SIGKILLed exporter, a control plane that is
 * gone, a full store (507) and a poisoned event cost delay or one
 * dead-lettered record, never a lost or doubled event.
 *
 * Where the test needs to act between the exporter and the server (kill the
 * exporter while its request is in flight, answer 507), a loopback proxy sits
 * in front of the real server and forwards everything else unchanged.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { spawnSync } from "node:child_process";
import { statfsSync } from "node:fs";
import { mkdtemp, open as openFile, readFile, rm, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { CpClient } from "../../src/cpapi/index.js";
import type { Envelope, StoredEvent } from "../../src/cpapi/index.js";
import { formatReference } from "../../src/oci/index.js";
import { seededRng } from "../../src/lib/index.js";
import { buildApp } from "../../src/orchestrator/index.js";
import { createLogger } from "../../src/observability/index.js";
import { buildBundle } from "../../src/policy/index.js";
import { initStateRoot, loadPolicy, nodeWalLocation, setTrustRoot } from "../../src/node/index.js";
import { DEFAULT_RUNTIME_CONFIG, ensureEnrolled, startRuntime } from "../../src/runtime/index.js";
import type { RunningRuntime } from "../../src/runtime/index.js";
import { Exporter, LiveWal, Wal, nodeWalFs, readCommitted, readGeneration, readPos } from "../../src/telemetry/index.js";
import { ControlPlaneEventsSink } from "../../src/telemetry/exporter/sinks.js";
import { rejectedPath } from "../../src/telemetry/exporter/deadletter.js";
import type { RejectedLine } from "../../src/telemetry/exporter/deadletter.js";
import { openTestCp } from "../helpers/cp-app.js";
import type { TestCp } from "../helpers/cp-app.js";
import { REPO_ROOT, runJson } from "../helpers/cli.js";
import { makeRelease, policyDir, testKeys } from "../helpers/release.js";
import { needs } from "../helpers/needs.js";
import { bearerFor } from "../helpers/tool-server.js";

const silent = { warn: () => undefined, error: () => undefined, info: () => undefined };
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});

async function until(f: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`${what}: not reached in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function tmp(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "export-cp-"));
  cleanup.push(() => rm(d, { recursive: true, force: true }));
  return d;
}

async function realCp(): Promise<{ cp: TestCp; url: string; operator: CpClient }> {
  const cp = await openTestCp();
  // The WAL stamps events with real time; the control plane refuses events more than 24 h after its own clock.
  cp.clock.set(Date.now());
  cleanup.push(() => cp.close());
  const url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
  return { cp, url, operator: new CpClient({ baseUrl: url, token: cp.owner }) };
}

/** Every stored event of a node, through the query API (every page). */
async function storedEvents(operator: CpClient, nodeId: string): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  let cursor: string | undefined;
  for (;;) {
    const page = await operator.queryEvents({ node_id: nodeId, limit: 1000, ...(cursor !== undefined ? { cursor } : {}) });
    out.push(...page.events);
    if (page.next_cursor === null) return out;
    cursor = page.next_cursor;
  }
}

const seqOf = (e: { event_id: string }): number => Number(e.event_id.split(":").at(-1));

type ProxyAction = { status: number; body: unknown; retryAfter?: string } | { kill: "before" | "after" } | undefined;

/** A loopback proxy in front of the real control plane: forwards every request, unless `hook` says otherwise. */
async function proxyTo(target: string): Promise<{ url: string; requests: number; hook: ((n: number) => ProxyAction) | undefined; victim: ChildProcess | undefined }> {
  const p = { url: "", requests: 0, hook: undefined as ((n: number) => ProxyAction) | undefined, victim: undefined as ChildProcess | undefined };
  const server: Server = createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const n = ++p.requests;
      const action = p.hook?.(n);
      const kill = async (): Promise<void> => {
        p.victim?.kill("SIGKILL"); // dies with its request in flight: it never sees the answer
        p.victim = undefined;
        await new Promise((r) => setTimeout(r, 30));
        res.destroy();
      };
      if (action && "kill" in action && action.kill === "before") return kill();
      if (action && "status" in action) {
        res.writeHead(action.status, { "content-type": "application/problem+json", ...(action.retryAfter ? { "retry-after": action.retryAfter } : {}) });
        return void res.end(JSON.stringify(action.body));
      }
      const headers: Record<string, string> = {};
      for (const h of ["authorization", "content-type", "accept", "user-agent"]) if (typeof req.headers[h] === "string") headers[h] = req.headers[h];
      const answer = await fetch(new URL(req.url ?? "/", target), { method: req.method ?? "GET", headers, ...(chunks.length > 0 ? { body: Buffer.concat(chunks) } : {}) });
      const text = await answer.text();
      if (action && "kill" in action && action.kill === "after") return kill(); // the server stored the batch; the exporter never learns it
      res.writeHead(answer.status, Object.fromEntries([...answer.headers.entries()].filter(([k]) => k === "content-type" || k === "retry-after")));
      res.end(text);
    })().catch(() => res.destroy());
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  p.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cleanup.push(() => new Promise((r) => server.close(r)));
  return p;
}

function child(args: string[], credential: string): { proc: ChildProcess; line: Promise<string>; exit: Promise<number | null> } {
  const proc = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "test/helpers/exporter-child.ts"), "cp", ...args], {
    cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, AUTONOMY_NODE_CREDENTIAL: credential },
  });
  cleanup.push(() => Promise.resolve(proc.kill("SIGKILL")));
  const rl = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const line = new Promise<string>((resolve) => rl.once("line", resolve));
  const exit = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  return { proc, line, exit };
}

async function rejectedLines(dir: string): Promise<RejectedLine[]> {
  const text = await readFile(rejectedPath(dir), "utf8").catch(() => "");
  return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as RejectedLine);
}

describe("WAL exporter → the real control plane (SQLite, loopback)", () => {
  it("a runtime started with --server exports its decisions, tool results and lifecycle with the node credential: ids <node>:wal:<generation>:<seq>, types the behaviour gates read", async () => {
    const { cp, url, operator } = await realCp();
    const dir = await tmp();
    const stateRoot = join(dir, "node");
    await initStateRoot(stateRoot);
    // Everything is permitted but tool.shell: echo succeeds, an unknown tool fails after its allow, the shell is denied.
    const built = await buildBundle(await policyDir({ "p.cedar": 'permit(principal, action, resource);\nforbid(principal, action == Action::"tool:tool.shell", resource);' }), { name: "p", version: "1.0.0" });
    (await loadPolicy(stateRoot, built.bytes)).loaded.engine.dispose();
    const bearer = await bearerFor(stateRoot, "a");
    const et = await operator.createEnrollmentToken({ node_id: "edge-1" });
    const rt: RunningRuntime = await startRuntime({
      stateRoot, config: { ...DEFAULT_RUNTIME_CONFIG, agentId: "a", node: {}, allowedDomains: [], upstreams: [], telemetry: {} },
      listen: { host: "127.0.0.1", port: 0 }, pollMs: 20, exporterPollMs: 20,
      controlPlane: { server: url, enrollToken: et.token, nodeId: "edge-1", pollIntervalMs: 60_000, timeoutMs: 2_000 },
    });
    cleanup.push(() => rt.close());
    expect(rt.exporter?.status().sink).toBe("control-plane");
    const call = async (kind: string): Promise<string> => {
      const res = await fetch(`${rt.url ?? ""}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...bearer }, body: JSON.stringify({ kind, params: kind === "tool.echo" ? { text: "x" } : { command: "id" } }) });
      return ((await res.json()) as { decision: string }).decision;
    };
    expect(await call("tool.echo")).toBe("allow");
    expect(await call("tool.echo")).toBe("allow");
    expect(await call("tool.shell")).toBe("deny");
    expect(await call("tool.nope")).toBe("allow");

    const walDir = nodeWalLocation(stateRoot).dir;
    const gen = (await readGeneration(nodeWalFs, walDir)).id;
    await until(async () => (await storedEvents(operator, "edge-1")).filter((e) => e.event_type === "ai.tool.result").length === 3, "tool results on the control plane");
    // Every committed WAL entry the exporter confirmed is on the server under its id, once. Read
    // until the two agree: a batch the server stored but whose answer the exporter has not yet
    // turned into telemetry.pos is in flight, not a discrepancy (CI saw 9 stored vs pos 7 under load).
    let stored: StoredEvent[] = [];
    let committed: Awaited<ReturnType<typeof readCommitted>>["entries"] = [];
    await until(async () => {
      stored = await storedEvents(operator, "edge-1");
      const pos = rt.exporter?.status().pos ?? 0;
      committed = (await readCommitted(walDir)).entries.filter((e) => e.seq <= pos);
      return (rt.exporter?.status().backlog ?? 1) === 0 && stored.length === committed.length;
    }, "exporter caught up and the server holds exactly what it confirmed");
    expect(stored.map((e) => e.event_id).sort()).toEqual(committed.map((e) => `edge-1:wal:${gen}:${e.seq}`).sort());
    const bySeq = new Map(stored.map((e) => [seqOf(e), e]));
    for (const e of committed) expect(bySeq.get(e.seq)?.attributes).toEqual(e.event);

    const decisions = stored.filter((e) => e.event_type === "ai.policy.decision");
    expect(decisions.map((e) => [e.attributes?.tool, e.attributes?.decision]).sort()).toEqual([["tool.echo", "allow"], ["tool.echo", "allow"], ["tool.nope", "allow"], ["tool.shell", "deny"]]);
    expect(decisions.every((e) => typeof e.attributes?.reason === "string" && e.node_id === "edge-1")).toBe(true);
    const results = stored.filter((e) => e.event_type === "ai.tool.result").map((e) => [e.attributes?.tool, e.attributes?.ok, e.attributes?.error_code ?? null]).sort();
    expect(results).toEqual([["tool.echo", true, null], ["tool.echo", true, null], ["tool.nope", false, "TOOL_UNKNOWN"]]);
    expect(stored.filter((e) => e.event_type === "ai.agent.lifecycle").map((e) => e.attributes?.phase)).toContain("runtime_started");
    // The release poller's lifecycle phases go the same way (a poll that found no release: no release id to lift).
    expect(stored.filter((e) => e.event_type === "ai.deployment.lifecycle").map((e) => e.attributes?.phase)).toContain("polled");
    expect(cp.store).toBeDefined();
  });

  it("after the node activates a release from the control plane, its decisions and tool results name that release at the top level (release_id, lock_fingerprint), so the control plane counts them per release", async () => {
    const { url, operator } = await realCp();
    const dir = await tmp();
    const stateRoot = join(dir, "node");
    const keys = testKeys();
    await initStateRoot(stateRoot);
    await setTrustRoot(stateRoot, { keys: [keys.publicPem], repository: `oci:${dir}/reg` });
    const bearer = await bearerFor(stateRoot, "a");
    const rel = await makeRelease({ ref: `oci:${dir}/reg:v1`, keys, sequence: 1, agentText: "one", repository: `oci:${dir}/reg`, policies: await policyDir({ "p.cedar": 'permit(principal, action == Action::"tool:tool.echo", resource);' }) });
    const envelope = JSON.parse(Buffer.from(await rel.repo.getBlob(rel.signed.statement.envelope)).toString("utf8")) as Envelope;
    const published = await operator.publishRelease({ statement: envelope, image: formatReference(rel.ref), channel: "stable" });
    const et = await operator.createEnrollmentToken({ node_id: "edge-r" });
    const rt = await startRuntime({
      stateRoot, config: { ...DEFAULT_RUNTIME_CONFIG, agentId: "a", node: {}, allowedDomains: [], upstreams: [], telemetry: {} }, listen: { host: "127.0.0.1", port: 0 }, pollMs: 20, exporterPollMs: 20,
      controlPlane: { server: url, enrollToken: et.token, nodeId: "edge-r", pollIntervalMs: 200, timeoutMs: 2_000, random: seededRng(7) },
    });
    cleanup.push(() => rt.close());
    const echo = async (): Promise<string> => ((await (await fetch(`${rt.url ?? ""}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...bearer }, body: JSON.stringify({ kind: "tool.echo", params: { text: "x" } }) })).json()) as { decision: string }).decision;
    await until(async () => (await echo()) === "allow", "the release's policy in force");
    await echo();
    // Two allowed calls: two allow decisions and two tool results.
    await until(async () => (await storedEvents(operator, "edge-r")).filter((e) => e.event_type === "ai.tool.result").length === 2, "tool results on the control plane");
    await until(async () => (await storedEvents(operator, "edge-r")).filter((e) => e.attributes?.decision === "allow").length === 2, "allow decisions on the control plane");
    const stored = await storedEvents(operator, "edge-r");
    const after = stored.filter((e) => (e.event_type === "ai.policy.decision" && e.attributes?.decision === "allow") || e.event_type === "ai.tool.result");
    expect(after.length).toBeGreaterThanOrEqual(4);
    expect(after.every((e) => e.release_id === published.release_id && e.lock_fingerprint === published.lock_fingerprint)).toBe(true);
    const activated = stored.find((e) => e.event_type === "ai.deployment.lifecycle" && e.attributes?.phase === "activated");
    expect(activated?.release_id).toBe(published.release_id);
  });

  it("attack: the node credential never goes to another server — [telemetry] control_plane_url elsewhere gets the events without it; --no-export-events sends nothing", async () => {
    const { operator, url } = await realCp();
    const seen: { auth: string | undefined; events: number }[] = [];
    const other = createServer((req, res) => {
      void (async () => {
        const chunks: Buffer[] = [];
        for await (const c of req) chunks.push(c as Buffer);
        const n = (JSON.parse(Buffer.concat(chunks).toString("utf8")) as { events: unknown[] }).events.length;
        seen.push({ auth: req.headers.authorization, events: n });
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ received: n, inserted: n, deduped: 0 }));
      })();
    });
    await new Promise<void>((r) => other.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise((r) => other.close(r)));
    const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
    const stateRoot = join(await tmp(), "node");
    await initStateRoot(stateRoot);
    const et = await operator.createEnrollmentToken({ node_id: "edge-c" });
    const base = { stateRoot, exporterPollMs: 20, config: { ...DEFAULT_RUNTIME_CONFIG, agentId: "a", node: {}, allowedDomains: [], upstreams: [], telemetry: { controlPlaneUrl: otherUrl } } };
    const rt = await startRuntime({ ...base, controlPlane: { server: url, enrollToken: et.token, nodeId: "edge-c", pollIntervalMs: 60_000, timeoutMs: 2_000 } });
    await until(() => seen.length > 0 && (rt.exporter?.status().backlog ?? 1) === 0, "events at the other server");
    await rt.close();
    expect(seen.every((r) => r.auth === undefined)).toBe(true);
    expect(await storedEvents(operator, "edge-c")).toEqual([]);
    // Turned off: no exporter at all, even with the config naming a destination.
    const off = await startRuntime({ ...base, controlPlane: { server: url, nodeId: "edge-c", pollIntervalMs: 60_000, timeoutMs: 2_000, exportEvents: false } });
    cleanup.push(() => off.close());
    expect(off.exporter).toBeUndefined();
  });

  it("`autonomy telemetry drain --state-root` drains a node's WAL to the control plane it enrolled with, as that node, with its credential", async () => {
    const { url, operator } = await realCp();
    const stateRoot = join(await tmp(), "node");
    await initStateRoot(stateRoot);
    const et = await operator.createEnrollmentToken({ node_id: "edge-cli" });
    await ensureEnrolled({ stateRoot, server: url, enrollToken: et.token, nodeId: "edge-cli" });
    const { dir: walDir, otherState } = nodeWalLocation(stateRoot);
    const wal = await LiveWal.open(walDir, { otherState });
    for (let i = 0; i < 12; i++) await wal.append({ type: "ai.policy.decision", decision: i % 4 ? "allow" : "deny", tool: "tool.echo", i });
    await wal.close();
    const r = await runJson<{ ok: boolean; drained: number; status: { pos: number; sink: string; node_id: string } }>(["telemetry", "drain", "--dir", walDir, "--state-root", stateRoot, "--once"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json).toMatchObject({ ok: true, drained: 12, status: { pos: 12, sink: "control-plane", node_id: "edge-cli" } });
    const stored = await storedEvents(operator, "edge-cli");
    expect(stored.filter((e) => e.attributes?.decision === "deny")).toHaveLength(3);
    expect(stored).toHaveLength(12);
  });

  it("attack: the exporter is SIGKILLed mid-batch, before and after the server stored it, three times → every event exactly once on the server, none lost", async () => {
    const { cp, url, operator } = await realCp();
    const credential = await cp.enroll("edge-k");
    const dir = await tmp();
    const wal = await Wal.open(join(dir, "wal"), { log: silent });
    const walDir = join(dir, "wal");
    let writing = true;
    const writer = (async () => {
      let i = 0;
      while (writing) {
        await Promise.all(Array.from({ length: 20 }, () => wal.append({ type: ["ai.agent.error", "ai.policy.decision", "ai.deployment.lifecycle", "heartbeat"][i % 4], decision: "allow", tool: "tool.echo", i: i++ })));
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    cleanup.push(async () => {
      writing = false;
      await writer;
      await wal.close();
    });
    const proxy = await proxyTo(url);
    try {
      for (const [k, when] of [[3, "after"], [5, "before"], [4, "after"]] as const) {
        const c = child([walDir, proxy.url, "edge-k"], credential);
        expect(await c.line).toBe("started");
        const killAt = proxy.requests + k;
        proxy.victim = c.proc;
        proxy.hook = (n) => (n === killAt ? { kill: when } : undefined);
        expect(await c.exit).toBeNull(); // killed by the signal
        proxy.hook = undefined;
      }
    } finally {
      writing = false;
      await writer;
    }
    const total = wal.lastSeq;
    const last = child([walDir, url, "edge-k", "--once", String(total)], credential);
    expect(await last.line).toBe(`done ${total}`);
    expect(await last.exit).toBe(0);
    const gen = (await readGeneration(nodeWalFs, walDir)).id;
    const stored = await storedEvents(operator, "edge-k");
    expect(stored).toHaveLength(total); // exactly once: the event_id dedup absorbed every resend
    expect(stored.map(seqOf).sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(stored.every((e) => e.event_id === `edge-k:wal:${gen}:${seqOf(e)}`)).toBe(true);
    // The batches killed after the server stored them were sent again and deduplicated, not stored twice.
    const metrics = await operator.metrics();
    expect(Number(/cp_events_ingested_total\{result="deduped"\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0);
    expect(await readPos(walDir)).toEqual({ kind: "ok", pos: total, generation: gen });
  });

  it("attack: the control plane is down (process gone, port closed) → nothing lost, everything delivered once it is back", async () => {
    const { cp, url, operator } = await realCp();
    const credential = await cp.enroll("edge-d");
    const dir = await tmp();
    const walDir = join(dir, "wal");
    const wal = await Wal.open(walDir, { log: silent });
    cleanup.push(() => wal.close());
    await cp.app.close();
    for (let i = 0; i < 50; i++) await wal.append({ type: i % 2 ? "ai.policy.decision" : "ai.tool.result", decision: "deny", ok: false, error_code: "TOOL_FAILED", i });
    const x = new Exporter({ wal: walDir, sink: new ControlPlaneEventsSink({ url, token: credential, timeoutMs: 2_000 }), nodeId: "edge-d", batchSize: 16, retry: { baseMs: 10, maxMs: 100, jitter: 0.5 }, pollMs: 10, log: silent });
    const ac = new AbortController();
    const running = x.run(ac.signal);
    cleanup.push(async () => {
      ac.abort();
      await running;
      await x.close();
    });
    await until(() => x.status().consecutive_failures >= 3, "failures while the control plane is down");
    expect(x.status()).toMatchObject({ pos: 0, backlog: 50, dead_lettered: 0 });
    expect(x.status().last_error?.reason).toBe("network");
    // The same server comes back on the same port and store.
    const app = await buildApp({ store: cp.store, clock: cp.clock, log: createLogger({ name: "cp.test", level: "silent" }) });
    cleanup.push(() => app.close());
    await app.listen({ host: "127.0.0.1", port: Number(new URL(url).port) });
    await until(() => x.status().pos === 50, "delivered after the outage");
    const stored = await storedEvents(operator, "edge-d");
    expect(stored.map(seqOf).sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(stored.filter((e) => e.event_type === "ai.tool.result").every((e) => e.attributes?.ok === false && e.attributes.error_code === "TOOL_FAILED")).toBe(true);
  });

  it("attack: the store is full (507 STORE_FULL with Retry-After) → retried with backoff honouring Retry-After, nothing lost, telemetry.pos never moves before the acknowledgement", async () => {
    const { cp, url, operator } = await realCp();
    const credential = await cp.enroll("edge-f");
    const dir = await tmp();
    const walDir = join(dir, "wal");
    const wal = await Wal.open(walDir, { log: silent });
    cleanup.push(() => wal.close());
    for (let i = 0; i < 40; i++) await wal.append({ type: "ai.policy.decision", decision: "allow", tool: "tool.echo", i });
    const proxy = await proxyTo(url);
    const seen: number[] = [];
    proxy.hook = (n) => {
      seen.push(Date.now());
      return n <= 3 ? { status: 507, body: { type: "about:blank", title: "Insufficient Storage", status: 507, code: "STORE_FULL", detail: "the store is full" }, retryAfter: "1" } : undefined;
    };
    const x = new Exporter({ wal: walDir, sink: new ControlPlaneEventsSink({ url: proxy.url, token: credential, timeoutMs: 2_000 }), nodeId: "edge-f", batchSize: 100, retry: { baseMs: 10, maxMs: 2_000, jitter: 0 }, pollMs: 10, log: silent });
    const ac = new AbortController();
    const running = x.run(ac.signal);
    cleanup.push(async () => {
      ac.abort();
      await running;
      await x.close();
    });
    await until(() => proxy.requests >= 2, "first retry");
    expect((await readPos(walDir)).kind).toBe("missing");
    expect(x.status().last_error).toMatchObject({ status: 507, reason: "status" });
    await until(() => x.status().pos === 40, "delivered once the store has room", 15_000);
    // Retry-After: 1 was the floor of each delay (base 10 ms would have retried at once).
    for (let i = 1; i <= 3; i++) expect((seen[i] ?? 0) - (seen[i - 1] ?? 0)).toBeGreaterThanOrEqual(900);
    expect((await storedEvents(operator, "edge-f")).map(seqOf).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(x.status().dead_lettered).toBe(0);
  });

  it("attack: poisoned events (nesting deeper than the server parses, a 100 KiB body, an unusable type and time, a __proto__ key) → the refused one is dead-lettered beside the WAL and counted, the others arrive (the big one truncated with a marker), the WAL keeps draining", async () => {
    const { cp, url, operator } = await realCp();
    const credential = await cp.enroll("edge-p");
    const dir = await tmp();
    const walDir = join(dir, "wal");
    const wal = await Wal.open(walDir, { log: silent });
    cleanup.push(() => wal.close());
    for (let i = 1; i <= 30; i++) {
      // The server refuses a body nested deeper than 32 (400 REQUEST_INVALID): this event can never be accepted.
      if (i === 12) await wal.append({ type: "ai.policy.decision", decision: "allow", deep: JSON.parse(`${"[".repeat(40)}${"]".repeat(40)}`) as unknown });
      else if (i === 5) await wal.append(JSON.parse('{"type":"ai.policy.decision","decision":"deny","tool":"tool.shell","__proto__":{"polluted":true}}') as Record<string, unknown>);
      else if (i === 17) await wal.append({ type: "ai.tool.result", tool: "tool.http_get", ok: false, error_code: "TOOL_FAILED", output: "x".repeat(100 * 1024) });
      else if (i === 20) await wal.append({ type: "weird type!/ü", timestamp: 1e20, release_id: "not-a-release", lock_fingerprint: "md5:0" });
      else await wal.append({ type: "ai.policy.decision", decision: i % 3 ? "allow" : "deny", tool: "tool.echo", i });
    }
    const x = new Exporter({ wal: walDir, sink: new ControlPlaneEventsSink({ url, token: credential, timeoutMs: 2_000 }), nodeId: "edge-p", batchSize: 8, retry: { baseMs: 10, maxMs: 100, jitter: 0.5 }, log: silent });
    cleanup.push(() => x.close());
    const r = await x.drainOnce();
    expect(r).toMatchObject({ caughtUp: true, pos: 30, deadLettered: 1 });
    expect(x.status().dead_lettered).toBe(1);
    const rejected = await rejectedLines(walDir);
    expect(rejected.map((l) => [l.seq, l.sink, l.status])).toEqual([[12, "control-plane", 400]]);
    const stored = await storedEvents(operator, "edge-p");
    expect(stored.map(seqOf).sort((a, b) => a - b)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1).filter((s) => s !== 12));
    const big = stored.find((e) => seqOf(e) === 17);
    expect(big?.event_type).toBe("ai.tool.result");
    expect(big?.attributes).toMatchObject({ type: "ai.tool.result", tool: "tool.http_get", ok: false, error_code: "TOOL_FAILED", _truncated: { dropped_keys: ["output"] } });
    expect(Buffer.byteLength(JSON.stringify(big?.attributes))).toBeLessThanOrEqual(16 * 1024);
    const odd = stored.find((e) => seqOf(e) === 20);
    expect(odd?.event_type).toBe("ai.telemetry.weird_type___");
    expect(odd?.release_id).toBeUndefined();
    expect(odd?.lock_fingerprint).toBeUndefined();
    expect(odd?.attributes).toMatchObject({ release_id: "not-a-release", lock_fingerprint: "md5:0" });
    // A __proto__ key is dropped on the way (the client's schema check rebuilds the object), never polluting anything; the event itself arrives.
    expect(stored.find((e) => seqOf(e) === 5)?.attributes).toEqual({ type: "ai.policy.decision", decision: "deny", tool: "tool.shell" });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("review: events dated far in the future (over 24 h after the control plane's time, refused with 400) are dead-lettered one by one and the WAL keeps draining", async () => {
    const { cp, url, operator } = await realCp();
    const credential = await cp.enroll("edge-f");
    const walDir = join(await tmp(), "wal");
    const wal = await Wal.open(walDir, { log: silent });
    cleanup.push(() => wal.close());
    const soon = new Date(Date.now() + 2 * 3_600_000).toISOString();
    const far = new Set([7, 15]);
    for (let i = 1; i <= 20; i++) {
      const timestamp = far.has(i) ? "2099-01-01T00:00:00Z" : i === 10 ? soon : new Date().toISOString();
      await wal.append({ type: "ai.policy.decision", decision: "allow", tool: "tool.echo", timestamp, i });
    }
    const x = new Exporter({ wal: walDir, sink: new ControlPlaneEventsSink({ url, token: credential, timeoutMs: 2_000 }), nodeId: "edge-f", batchSize: 8, retry: { baseMs: 10, maxMs: 100, jitter: 0.5 }, log: silent });
    cleanup.push(() => x.close());
    expect(await x.drainOnce()).toMatchObject({ caughtUp: true, pos: 20, deadLettered: 2 });
    const rejected = await rejectedLines(walDir);
    expect(rejected.map((l) => [l.seq, l.sink, l.status])).toEqual([[7, "control-plane", 400], [15, "control-plane", 400]]);
    expect(rejected[0]?.reason).toContain("timestamp");
    // Two hours ahead is a clock to tolerate: stored with the node's own time.
    const stored = await storedEvents(operator, "edge-f");
    expect(stored.map(seqOf).sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1).filter((q) => !far.has(q)));
    expect(stored.find((e) => seqOf(e) === 10)?.timestamp).toBe(soon);
    // Not wedged: what is appended next drains as usual.
    for (let i = 21; i <= 23; i++) await wal.append({ type: "ai.policy.decision", decision: "deny", tool: "tool.echo", i });
    expect(await x.drainOnce()).toMatchObject({ caughtUp: true, pos: 23, deadLettered: 0 });
    expect((await storedEvents(operator, "edge-f")).length).toBe(21);
  });
});

const openssl = needs("openssl");

openssl.describe("WAL exporter → the real control plane over TLS with a private CA (--server-ca)", () => {
  it("review: the runtime's exporter trusts --server-ca like the poller does: a node enrolled over https with a private CA delivers its events (the exporter had used the public CAs and never got through)", async () => {
    const dir = await tmp();
    const cert = join(dir, "cp.pem");
    const key = join(dir, "cp.key");
    const made = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=cp.test", "-addext", "subjectAltName=IP:127.0.0.1"], { encoding: "utf8" });
    expect(made.status, made.stderr).toBe(0);
    const ca = await readFile(cert, "utf8");
    const cp = await openTestCp({ tls: { cert: await readFile(cert), key: await readFile(key) } });
    cp.clock.set(Date.now());
    cleanup.push(() => cp.close());
    const url = (await cp.app.listen({ host: "127.0.0.1", port: 0 })).replace(/^http:/, "https:");
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:/);
    const operator = new CpClient({ baseUrl: url, token: cp.owner, ca });
    const stateRoot = join(dir, "node");
    await initStateRoot(stateRoot);
    const et = await operator.createEnrollmentToken({ node_id: "edge-tls" });
    const rt: RunningRuntime = await startRuntime({
      stateRoot, config: { ...DEFAULT_RUNTIME_CONFIG, agentId: "a", node: {}, allowedDomains: [], upstreams: [], telemetry: {} },
      pollMs: 20, exporterPollMs: 20,
      controlPlane: { server: url, ca, enrollToken: et.token, nodeId: "edge-tls", pollIntervalMs: 60_000, timeoutMs: 2_000 },
    });
    cleanup.push(() => rt.close());
    expect(rt.exporter?.status().sink).toBe("control-plane");
    // The poller got through (it enrolled and polled over the same TLS) and so must the exporter: runtime_started and polled arrive.
    await until(async () => {
      const types = (await storedEvents(operator, "edge-tls")).map((e) => `${e.event_type}/${String(e.attributes?.phase)}`);
      return types.includes("ai.agent.lifecycle/runtime_started") && types.includes("ai.deployment.lifecycle/polled");
    }, "the node's events on the TLS control plane", 10_000);
    await until(() => (rt.exporter?.status().backlog ?? 1) === 0, "exporter caught up", 10_000);
    expect(rt.exporter?.status().last_error).toBeNull();
    await rt.close();
    // `autonomy telemetry drain --state-root` takes the same CA (--server-ca); without it, nothing gets through.
    const { dir: walDir, otherState } = nodeWalLocation(stateRoot);
    const wal = await LiveWal.open(walDir, { otherState });
    for (let i = 0; i < 3; i++) await wal.append({ type: "ai.policy.decision", decision: "deny", tool: "tool.cli", i });
    await wal.close();
    const drain = (extra: string[]): ReturnType<typeof runJson<{ ok: boolean; status: { backlog: number } }>> =>
      runJson<{ ok: boolean; status: { backlog: number } }>(["telemetry", "drain", "--dir", walDir, "--state-root", stateRoot, "--once", "--timeout-ms", "2000", "--retry-max-ms", "100", ...extra]);
    const without = await drain([]);
    expect(without.code, without.stderr).toBe(1);
    const withCa = await drain(["--server-ca", cert]);
    expect(withCa.code, withCa.stderr).toBe(0);
    expect(withCa.json).toMatchObject({ ok: true, status: { backlog: 0 } });
    expect((await storedEvents(operator, "edge-tls")).filter((e) => e.attributes?.tool === "tool.cli")).toHaveLength(3);
  });
});

const privileged = needs("root", "util-linux");

privileged.describe("WAL exporter → the real control plane whose disk fills (SQLite on a 16 MiB tmpfs; needs root)", () => {
  it("attack: the control plane's disk is full (a real 507 STORE_FULL from SQLITE_FULL) → retried, telemetry.pos waits, and once space is freed every event arrives exactly once", async () => {
    privileged.check();
    const mnt = await tmp();
    const r = spawnSync("mount", ["-t", "tmpfs", "-o", "size=16m", "tmpfs", mnt], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`mount tmpfs failed: ${r.stderr}`);
    cleanup.push(() => Promise.resolve(spawnSync("umount", ["-l", mnt])));
    // The WAL stamps events with the real time, which the server checks against its own (at most 24 h ahead).
    const cp = await openTestCp({ location: join(mnt, "cp.db"), clockStart: Date.now() });
    cleanup.push(() => cp.close());
    const url = await cp.app.listen({ host: "127.0.0.1", port: 0 });
    const operator = new CpClient({ baseUrl: url, token: cp.owner });
    const credential = await cp.enroll("edge-full");
    // Ballast: all but 256 KiB of the file system, so the ingests themselves fill it.
    const ballast = join(mnt, "ballast");
    const st = statfsSync(mnt);
    const fh = await openFile(ballast, "w");
    await fh.write(Buffer.alloc(Math.max(0, st.bavail * st.bsize - 256 * 1024), 1));
    await fh.close();
    const walDir = join(await tmp(), "wal");
    const wal = await Wal.open(walDir, { log: silent });
    cleanup.push(() => wal.close());
    const total = 150;
    for (let i = 1; i <= total; i++) await wal.append({ type: "ai.policy.decision", decision: "allow", tool: "tool.echo", i, reason: "x".repeat(4000) });
    const x = new Exporter({ wal: walDir, sink: new ControlPlaneEventsSink({ url, token: credential, timeoutMs: 5_000 }), nodeId: "edge-full", batchSize: 16, retry: { baseMs: 20, maxMs: 200, jitter: 0.5 }, pollMs: 10, log: silent });
    const ac = new AbortController();
    const running = x.run(ac.signal);
    cleanup.push(async () => {
      ac.abort();
      await running;
      await x.close();
    });
    await until(() => x.status().last_error?.status === 507 && x.status().consecutive_failures >= 3, "507 STORE_FULL from the real server, retried");
    const stalled = x.status().pos;
    expect(stalled).toBeLessThan(total);
    expect(x.status().dead_lettered).toBe(0);
    const p = await readPos(walDir);
    expect(p.kind === "missing" || (p.kind === "ok" && p.pos === stalled)).toBe(true);
    await unlink(ballast); // the operator frees space
    await until(() => x.status().pos === total, "delivered once the disk has room");
    const stored = await storedEvents(operator, "edge-full");
    expect(stored.map(seqOf).sort((a, b) => a - b)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  });
});

