/**
 * Attack 5 of issue 9: "the tool server trusts every local caller". Real
 * servers on loopback (and a unix socket, and HTTPS with a certificate made
 * by openssl), real tokens in a state root, real HTTP clients.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { connect, createServer as createNetServer } from "node:net";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { FastifyInstance } from "fastify";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { buildBundle } from "../../src/policy/index.js";
import { createToken, listTokens, loadPolicy, revokeToken, stateRootPaths } from "../../src/node/index.js";
import { DEFAULT_RUNTIME_CONFIG, MemorySink, startRuntime } from "../../src/runtime/index.js";
import type { RunningRuntime, RuntimeConfig, ToolCallContext } from "../../src/runtime/index.js";
import { createToolServer } from "../../src/runtime/http-server.js";
import { builtinTools } from "../../src/runtime/tools/index.js";
import { interceptorFor, listen, mutablePolicy, policyOf, testAuth } from "../helpers/tool-server.js";
import type { TestAuth } from "../helpers/tool-server.js";
import { EXAMPLE_POLICY_DIR } from "../helpers/policies.js";
import { describeRun, runCli, runJson, runProcess } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";

const PERMIT_ALL = { name: "permit_all.cedar", text: '@id("permit_all")\npermit (principal, action, resource);' };
const ONLY_A = { name: "only_a.cedar", text: '@id("echo_for_a")\npermit (principal == Agent::"agent-a", action == Action::"tool:tool.echo", resource);' };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "aops-runtime-auth-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
}

/** One request with node:http (which, unlike fetch, lets the test send any Host header). */
function send(base: string | { socketPath: string }, method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<Answer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const target = typeof base === "string" ? (() => { const u = new URL(base); return { host: u.hostname, port: u.port }; })() : base;
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method, path, headers: { ...(payload ? { "content-type": "application/json", accept: "application/json, text/event-stream" } : {}), ...headers } }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c)).on("end", () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} });
      });
    });
    req.on("error", reject);
    req.end(payload);
  });
}

const TOOL_CALL = { kind: "tool.shell", params: { command: "true" } };
const MCP_LIST = { jsonrpc: "2.0", id: 1, method: "tools/list" };

/** A tool server over a permit-all policy (so only authentication stands between a caller and tool.shell). */
async function permissiveServer(auth: TestAuth, sink?: MemorySink, policy = policyOf([PERMIT_ALL], "permit-all")): Promise<{ base: string; app: FastifyInstance }> {
  const source = mutablePolicy(policy);
  const app = createToolServer({ interceptor: interceptorFor(source, sink), tools: builtinTools({ shell: { cwd: dir } }), policy: source, auth: auth.auth });
  cleanups.push(() => app.close());
  return { base: await listen(app), app };
}

describe("attack 5: the tool server no longer trusts every local caller", () => {
  it("attack 5: a caller without a token gets 401 on /v1/tool, /v1/status and /mcp", async () => {
    const auth = await testAuth(dir);
    const sink = new MemorySink();
    const { base } = await permissiveServer(auth, sink);
    const marker = join(dir, "ran-without-token");
    const call = { kind: "tool.shell", params: { command: `touch ${marker}` } };
    for (const [method, path, body] of [["POST", "/v1/tool", call], ["GET", "/v1/status", undefined], ["POST", "/mcp", MCP_LIST]] as const) {
      const variants: Record<string, string>[] = [{}, { authorization: "Bearer aut_0000000000000000000000000000000000000000000" }, { authorization: "Basic dXNlcjpwYXNz" }];
      for (const headers of variants) {
        const r = await send(base, method, path, headers, body);
        expect(r.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(r.headers["www-authenticate"]).toMatch(/^Bearer realm="autonomy-runtime"/);
        expect(r.headers["content-type"]).toMatch(/^application\/problem\+json/);
        expect(r.body).toMatchObject({ type: "urn:autonomyops:error:AUTH_REQUIRED", status: 401, code: "AUTH_REQUIRED" });
        expect(String(r.body.hint)).toContain("autonomy runtime token create");
      }
    }
    // /v1/tool keeps its contract: every body says decision and policy_ref.
    expect((await send(base, "POST", "/v1/tool", {}, call)).body).toMatchObject({ decision: "deny", policy_ref: expect.stringContaining("permit-all") as unknown });
    // Refused before the body is read: an oversized body without a token is a 401, not a 413.
    expect((await send(base, "POST", "/v1/tool", {}, { kind: "tool.echo", params: { text: "a".repeat(2 * 1024 * 1024) } })).status).toBe(401);
    expect(existsSync(marker)).toBe(false);
    expect(sink.total).toBe(0); // refused before any decision
    // /healthz and /readyz stay open (supervisors), and say nothing a caller could use.
    expect((await send(base, "GET", "/healthz", {})).status).toBe(200);
    // With the token, the same call is decided and runs.
    expect((await send(base, "POST", "/v1/tool", auth.headers(), call)).status).toBe(200);
    expect(existsSync(marker)).toBe(true);
  });

  it("attack 5: a revoked token gets 403 from the next request, without a restart", async () => {
    const auth = await testAuth(dir, ["agent-a"]);
    const { base } = await permissiveServer(auth);
    expect((await send(base, "POST", "/v1/tool", auth.headers(), TOOL_CALL)).status).toBe(200);
    const id = (await listTokens(auth.stateRoot))[0]?.id ?? "";
    await revokeToken(auth.stateRoot, id);
    for (const [method, path, body] of [["POST", "/v1/tool", TOOL_CALL], ["GET", "/v1/status", undefined], ["POST", "/mcp", MCP_LIST]] as const) {
      const r = await send(base, method, path, auth.headers(), body);
      expect(r.status, `${method} ${path}`).toBe(403);
      expect(r.body).toMatchObject({ code: "AUTH_TOKEN_REVOKED" });
      expect(String(r.body.detail)).toContain(id);
    }
    // A token created while the server runs counts at once too.
    const fresh = await createToken(auth.stateRoot, "agent-a");
    expect((await send(base, "POST", "/v1/tool", { authorization: `Bearer ${fresh.token}` }, TOOL_CALL)).status).toBe(200);
  });

  it("attack 5: the token's agent is the Cedar principal: a per-agent policy allows agent A and denies agent B, who cannot claim to be A", async () => {
    const auth = await testAuth(dir, ["agent-a", "agent-b"]);
    const sink = new MemorySink();
    const { base } = await permissiveServer(auth, sink, policyOf([ONLY_A], "per-agent"));
    const echo = { kind: "tool.echo", params: { text: "hi" } };
    expect((await send(base, "POST", "/v1/tool", auth.headers("agent-a"), echo)).status).toBe(200);
    const b = await send(base, "POST", "/v1/tool", { ...auth.headers("agent-b"), "x-agent-id": "agent-a", "x-autonomy-principal": 'Agent::"agent-a"' }, echo);
    expect(b.status).toBe(403);
    expect(b.body).toMatchObject({ decision: "deny", policies: [] });
    // Naming another agent in the body is not a way in either: the body schema has no such field.
    expect((await send(base, "POST", "/v1/tool", auth.headers("agent-b"), { ...echo, agent_id: "agent-a" })).status).toBe(400);
    // Over MCP the same: B's tools/call is denied.
    const client = new Client({ name: "agent-b", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: auth.headers("agent-b") } }));
    cleanups.push(() => client.close());
    expect((await client.callTool({ name: "tool.echo", arguments: { text: "hi" } })).isError).toBe(true);
    const events = sink.events().map((e) => [e.agent_id, e.transport, e.decision, e.token_id?.startsWith("tok_")]);
    expect(events).toEqual([["agent-a", "http", "allow", true], ["agent-b", "http", "deny", true], ["agent-b", "mcp", "deny", true]]);
  });

  it("attack 5: a follow-up of a call (a redirect hop) is decided for the same authenticated agent, not the configured one", async () => {
    const sink = new MemorySink();
    const policy = policyOf([ONLY_A, { name: "hop.cedar", text: '@id("hop_for_a")\npermit (principal == Agent::"agent-a", action == Action::"tool:tool.hop", resource);' }], "per-agent");
    const gate = interceptorFor(() => policy, sink);
    const hopTool = { name: "tool.hop", description: "asks about a follow-up", inputSchema: { type: "object" }, run: async (_p: Record<string, unknown>, _s?: AbortSignal, ctx?: ToolCallContext) => ({ output: await ctx?.redecide({ step: 2 }) }) };
    const r = await gate.call({ kind: "tool.hop", params: { step: 1 } }, hopTool, "http", undefined, { agentId: "agent-a", tokenId: "tok_00000000000000aa" });
    expect(r).toMatchObject({ decision: "allow", ok: true, output: { decision: "allow" } });
    expect(sink.events().map((e) => [e.agent_id, e.token_id, e.follow_up ?? false])).toEqual([["agent-a", "tok_00000000000000aa", false], ["agent-a", "tok_00000000000000aa", true]]);
  });

  it("attack 5: a request whose Host is not this server (DNS rebinding, Host: evil.example) is refused on every route", async () => {
    const auth = await testAuth(dir);
    const sink = new MemorySink();
    const { base } = await permissiveServer(auth, sink);
    const port = new URL(base).port;
    for (const host of ["evil.example", `evil.example:${port}`, "127.0.0.1:1", `attacker.127.0.0.1.nip.io:${port}`]) {
      for (const [method, path, body] of [["POST", "/v1/tool", TOOL_CALL], ["GET", "/v1/status", undefined], ["POST", "/mcp", MCP_LIST], ["GET", "/readyz", undefined]] as const) {
        const r = await send(base, method, path, { ...auth.headers(), host }, body);
        expect(r.status, `${host} ${path}`).toBe(421);
        expect(r.body).toMatchObject({ code: "HOST_NOT_ALLOWED" });
      }
    }
    expect(sink.total).toBe(0);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) expect((await send(base, "GET", "/v1/status", { ...auth.headers(), host })).status, host).toBe(200);
  });

  it("attack 5: two Host headers are a 400, and an absolute-form target naming another host a 421 (its host wins, RFC 9112), whatever the Host header says", async () => {
    const auth = await testAuth(dir);
    const sink = new MemorySink();
    const { base } = await permissiveServer(auth, sink);
    const port = Number(new URL(base).port);
    const token = auth.headers().authorization ?? "";
    const raw = (line: string, headers: string[], body?: string): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const s = connect({ host: "127.0.0.1", port });
        let out = "";
        s.on("data", (b: Buffer) => (out += b.toString())).on("end", () => resolve({ status: Number(out.split(" ")[1]), body: out.slice(out.indexOf("\r\n\r\n") + 4) })).on("error", reject);
        const length = body === undefined ? [] : ["content-type: application/json", `content-length: ${Buffer.byteLength(body)}`];
        s.write(`${line}\r\n${[...headers, ...length, `authorization: ${token}`, "connection: close"].join("\r\n")}\r\n\r\n${body ?? ""}`);
      });
    const call = JSON.stringify(TOOL_CALL);
    const own = `host: 127.0.0.1:${port}`;
    for (const hosts of [[own, `host: evil.example:${port}`], [`host: evil.example:${port}`, own], [own, own]]) {
      const r = await raw("POST /v1/tool HTTP/1.1", hosts, call);
      expect(r.status, hosts.join()).toBe(400);
      expect(JSON.parse(r.body)).toMatchObject({ code: "HOST_HEADER_INVALID" });
    }
    for (const target of [`http://evil.example:${port}/v1/tool`, "http://evil.example/v1/tool", `http://localhost.evil.example:${port}/v1/tool`]) {
      const r = await raw(`POST ${target} HTTP/1.1`, [own], call);
      expect(r.status, target).toBe(421);
      expect(JSON.parse(r.body)).toMatchObject({ code: "HOST_NOT_ALLOWED" });
    }
    expect((await raw(`GET http://evil.example/v1/status HTTP/1.1`, [own])).status).toBe(421);
    expect(sink.total).toBe(0);
    expect((await raw("POST /v1/tool HTTP/1.1", [own], call)).status).toBe(200);
  });

  it("attack 5: /v1/status refuses a foreign browser Origin, even with a token", async () => {
    const auth = await testAuth(dir);
    const { base } = await permissiveServer(auth);
    const r = await send(base, "GET", "/v1/status", { ...auth.headers(), origin: "http://evil.example" });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ code: "ORIGIN_NOT_ALLOWED" });
  });
});

describe("attack 5: the runtime's listeners", () => {
  let rt: RunningRuntime | undefined;
  afterEach(async () => {
    await rt?.close();
    rt = undefined;
  });

  const config = (extra: Partial<RuntimeConfig> = {}): RuntimeConfig => ({ ...DEFAULT_RUNTIME_CONFIG, agentId: "configured", node: {}, allowedDomains: [], upstreams: [], telemetry: {}, ...extra });

  async function node(): Promise<string> {
    const stateRoot = join(await mkdtemp(join(dir, "node-")), "state");
    const built = await buildBundle(EXAMPLE_POLICY_DIR, { name: "demo", version: "1.0.0" });
    (await loadPolicy(stateRoot, built.bytes)).loaded.engine.dispose();
    return stateRoot;
  }

  it("attack 5: --listen 0.0.0.0:0 without TLS is refused, with the reason and what to do", async () => {
    const stateRoot = await node();
    await createToken(stateRoot, "agent-a");
    const r = await runJson(["runtime", "start", "--state-root", stateRoot, "--listen", "0.0.0.0:0"]);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.json).toMatchObject({ ok: false, code: "RUNTIME_LISTEN_REFUSED" });
    expect(String(r.json.message)).toContain("0.0.0.0:0");
    expect(String(r.json.message)).toContain("TLS");
    expect(String(r.json.hint)).toContain("--tls-cert");
    await expect(startRuntime({ stateRoot, config: config(), listen: { host: "::", port: 0 } })).rejects.toMatchObject({ code: "RUNTIME_LISTEN_REFUSED" });
  });

  it("runtime start on a port in use says so (RUNTIME_LISTEN_IN_USE, choose another --listen), not INTERNAL", async () => {
    const stateRoot = await node();
    await createToken(stateRoot, "agent-a");
    const taken = createNetServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => taken.close(r)));
    const port = (taken.address() as { port: number }).port;
    const r = await runJson(["runtime", "start", "--state-root", stateRoot, "--listen", `127.0.0.1:${port}`]);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.json).toMatchObject({ ok: false, code: "RUNTIME_LISTEN_IN_USE" });
    expect(String(r.json.message)).toContain(`127.0.0.1:${port}: port in use, choose another --listen`);
    expect(JSON.stringify(r.json)).not.toMatch(/this is a bug/i);
    await expect(startRuntime({ stateRoot, config: config(), listen: { host: "127.0.0.1", port } })).rejects.toMatchObject({ code: "RUNTIME_LISTEN_IN_USE" });
  });

  it("attack 5: a runtime with no token yet refuses every call (401) and says at start how to create one", async () => {
    const stateRoot = await node();
    const child = spawn(process.execPath, [join(process.cwd(), "bin/autonomy.js"), "runtime", "start", "--state-root", stateRoot, "--listen", "127.0.0.1:0", "--json"], { stdio: ["ignore", "ignore", "pipe"] });
    cleanups.push(async () => {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    });
    let stderr = "";
    const ready = await new Promise<{ url: string; active_tokens: number }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`not ready: ${stderr}`)), 20_000);
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString("utf8");
        const line = stderr.split("\n").find((l) => l.startsWith("{"));
        if (line) {
          clearTimeout(t);
          resolve(JSON.parse(line) as { url: string; active_tokens: number });
        }
      });
    });
    expect(ready.active_tokens).toBe(0);
    expect(stderr).toContain(`autonomy runtime token create --state-root ${stateRoot} --agent`);
    expect((await send(ready.url, "POST", "/v1/tool", {}, { kind: "tool.echo", params: { text: "x" } })).status).toBe(401);
    // The operator creates one with the CLI: it counts without a restart.
    const created = await runCli(["runtime", "token", "create", "--state-root", stateRoot, "--agent", "agent-a"]);
    expect(created.code, describeRun(created)).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^aut_[A-Za-z0-9_-]{43}$/);
    expect(created.stdout).toBe(`${token}\n`); // stdout carries the token only; status went to stderr
    expect(created.stderr).toContain("shown only this once");
    expect((await send(ready.url, "POST", "/v1/tool", { authorization: `Bearer ${token}` }, { kind: "tool.echo", params: { text: "x" } })).status).toBe(200);
  });

  it("attack 5: the token file is 0600 in a 0700 directory and holds hashes, never a token", async () => {
    const stateRoot = join(await mkdtemp(join(dir, "tok-")), "state");
    const r = await runJson<{ ok: boolean; id: string; agent_id: string; token: string }>(["runtime", "token", "create", "--state-root", stateRoot, "--agent", "picker-arm-7"]);
    expect(r.code, describeRun(r)).toBe(0);
    const p = stateRootPaths(stateRoot);
    expect((await stat(p.tokens)).mode & 0o777).toBe(0o600);
    expect((await stat(p.auth)).mode & 0o777).toBe(0o700);
    const text = await readFile(p.tokens, "utf8");
    expect(text).not.toContain(r.json.token);
    expect(text).not.toContain(r.json.token.slice(4, 20));
    expect(text).toContain(createHash("sha256").update(r.json.token).digest("hex"));
    const list = await runJson<{ tokens: Record<string, unknown>[] }>(["runtime", "token", "list", "--state-root", stateRoot]);
    expect(list.json.tokens).toEqual([{ id: r.json.id, agent_id: "picker-arm-7", created_at: expect.any(String) as unknown, revoked: false }]);
    expect(list.stdout).not.toMatch(/[a-f0-9]{64}/);
    const revoked = await runJson(["runtime", "token", "revoke", "--state-root", stateRoot, r.json.id]);
    expect(revoked.json).toMatchObject({ ok: true, token: { id: r.json.id, revoked: true } });
    expect((await runJson(["runtime", "token", "revoke", "--state-root", stateRoot, "tok_0000000000000000"])).json).toMatchObject({ ok: false, code: "TOKEN_NOT_FOUND" });
    expect((await runJson(["runtime", "token", "create", "--state-root", stateRoot, "--agent", 'evil" || true'])).json).toMatchObject({ ok: false, code: "TOKEN_AGENT_INVALID" });
  });

  it("attack 5: a unix socket listener works with a token and is 0600; a stale socket is replaced, a live one or a plain file is not", async () => {
    const stateRoot = await node();
    const headers = { authorization: `Bearer ${(await createToken(stateRoot, "agent-a")).token}` };
    const sockDir = await mkdtemp(join("/tmp", "aops-sock-"));
    cleanups.push(() => rm(sockDir, { recursive: true, force: true }));
    const socketPath = join(sockDir, "tools.sock");
    // A stale socket, as a SIGKILLed runtime leaves it.
    const stale = spawn(process.execPath, ["-e", "require('net').createServer().listen(process.argv[1], () => console.log('up'))", socketPath], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((r) => stale.stdout.once("data", r));
    stale.kill("SIGKILL");
    await new Promise((r) => stale.once("exit", r));
    expect((await stat(socketPath)).isSocket()).toBe(true);

    rt = await startRuntime({ stateRoot, config: config(), listen: { path: socketPath }, sink: new MemorySink() });
    expect(rt.url).toBe(`unix:${socketPath}`);
    expect((await stat(socketPath)).mode & 0o777).toBe(0o600);
    expect((await send({ socketPath }, "POST", "/v1/tool", { ...headers, host: "localhost" }, { kind: "tool.echo", params: { text: "via socket" } })).body).toMatchObject({ decision: "allow", output: { text: "via socket" } });
    expect((await send({ socketPath }, "POST", "/v1/tool", { host: "localhost" }, { kind: "tool.echo", params: { text: "x" } })).status).toBe(401);

    // A second runtime on the same (live) socket is refused and leaves it alone.
    await expect(startRuntime({ stateRoot: await node(), config: config(), listen: { path: socketPath }, sink: new MemorySink() })).rejects.toMatchObject({ code: "RUNTIME_LISTEN_IN_USE" });
    expect((await send({ socketPath }, "GET", "/v1/status", { ...headers, host: "localhost" })).status).toBe(200);
    await rt.close();
    rt = undefined;
    expect(existsSync(socketPath)).toBe(false); // removed on close

    // --socket-mode 0660: a group of agents may connect (still with a token each).
    rt = await startRuntime({ stateRoot, config: config(), listen: { path: socketPath, mode: 0o660 }, sink: new MemorySink() });
    expect((await stat(socketPath)).mode & 0o777).toBe(0o660);
    await rt.close();
    rt = undefined;

    const plain = join(sockDir, "not-a-socket");
    await writeFile(plain, "keep me");
    await expect(startRuntime({ stateRoot, config: config(), listen: { path: plain, mode: 0o660 }, sink: new MemorySink() })).rejects.toMatchObject({ code: "RUNTIME_LISTEN_IN_USE" });
    expect(await readFile(plain, "utf8")).toBe("keep me");
  });

  it("refuses half a TLS configuration, an unreadable certificate and a relative socket path, saying what is wrong", async () => {
    const stateRoot = await node();
    const half = await runJson(["runtime", "start", "--state-root", stateRoot, "--tls-cert", "/nonexistent.crt"]);
    expect(half.code, describeRun(half)).toBe(2);
    expect(half.json).toMatchObject({ ok: false, code: "USAGE" });
    const rel = await runCli(["runtime", "start", "--state-root", stateRoot, "--listen", "unix:tools.sock"]);
    expect(rel.code, describeRun(rel)).toBe(2);
    expect(rel.stderr).toContain("unix:/absolute/path.sock");
    await expect(startRuntime({ stateRoot, config: config({ tls: { cert: join(dir, "missing.crt"), key: join(dir, "missing.key") } }), listen: { host: "127.0.0.1", port: 0 }, sink: new MemorySink() }))
      .rejects.toMatchObject({ code: "RUNTIME_TLS_INVALID", message: expect.stringContaining("missing.crt") as unknown });
  });

  const openssl = needs("openssl");
  openssl.it("attack 5: outside loopback only with TLS and a token: HTTPS with an openssl certificate, checked by a real HTTPS client", async () => {
    const stateRoot = await node();
    const certDir = await mkdtemp(join(dir, "tls-"));
    const cert = join(certDir, "cert.pem");
    const key = join(certDir, "key.pem");
    const made = await runProcess("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=edge-node.test", "-addext", "subjectAltName=DNS:edge-node.test,IP:127.0.0.1"]);
    expect(made.code, describeRun(made)).toBe(0);
    const tls = { cert, key };
    // TLS alone is not enough: no token yet.
    await expect(startRuntime({ stateRoot, config: config({ tls }), listen: { host: "0.0.0.0", port: 0 }, sink: new MemorySink() })).rejects.toMatchObject({ code: "RUNTIME_LISTEN_REFUSED", message: expect.stringContaining("token") as unknown });
    const token = (await createToken(stateRoot, "agent-a")).token;
    rt = await startRuntime({ stateRoot, config: config({ tls }), listen: { host: "0.0.0.0", port: 0 }, sink: new MemorySink() });
    expect(rt.url).toMatch(/^https:\/\//);
    const port = Number(new URL(rt.url ?? "").port);
    const ca = await readFile(cert);
    const get = (host: string, servername: string, headers: Record<string, string>): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest({ host: "127.0.0.1", port, path: "/v1/status", servername, ca, headers: { host, ...headers } }, (res) => {
          res.resume().on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("error", reject);
        req.end();
      });
    // The client verifies the certificate (ca pinned, no rejectUnauthorized: false) for the name in its SAN.
    expect(await get(`edge-node.test:${port}`, "edge-node.test", { authorization: `Bearer ${token}` })).toBe(200);
    expect(await get(`edge-node.test:${port}`, "edge-node.test", {})).toBe(401);
    expect(await get(`evil.example:${port}`, "edge-node.test", { authorization: `Bearer ${token}` })).toBe(421);
    // Plain HTTP to the TLS port gets no answer a client could use.
    await expect(send(`http://127.0.0.1:${port}`, "GET", "/v1/status", { authorization: `Bearer ${token}` })).rejects.toThrow();
  });
});
