/**
 * Attack 8 (http_get): every redirect hop is a new policy decision, recorded
 * in the WAL like the first; a hop the policy denies stops the call, and an
 * https → http redirect is refused. Real local HTTP and HTTPS servers (an
 * openssl-made certificate for localhost and 127.0.0.1), a real Cedar policy
 * and a real telemetry WAL behind the tool server.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { createToolServer } from "../../src/runtime/http-server.js";
import { Interceptor } from "../../src/runtime/interceptor.js";
import { httpGetTool, toolRegistry } from "../../src/runtime/tools/index.js";
import { WalDecisionSink } from "../../src/runtime/wal-sink.js";
import { Wal, readCommitted } from "../../src/telemetry/index.js";
import { needs } from "../helpers/needs.js";
import { listen, policyOf, testAuth } from "../helpers/tool-server.js";
import type { TestAuth } from "../helpers/tool-server.js";

const withOpenssl = needs("openssl");

/** http_get is permitted, except to the host `localhost` (reachable and allow-listed: only the policy stops it). */
const POLICY = [
  { name: "get.cedar", text: '@id("get_allow")\npermit (principal, action == Action::"tool:tool.http_get", resource);' },
  { name: "no_localhost.cedar", text: '@id("no_localhost")\nforbid (principal, action == Action::"tool:tool.http_get", resource) when { context.params.endpoint like "*://localhost:*" };' },
];

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const closers: (() => Promise<unknown>)[] = [];
let dir: string;
let auth: TestAuth;
let ca: string;
let plainBase: string; // http://127.0.0.1:P
let tlsPort: number;
let helloHits = 0;

function routes(base: () => string): Handler {
  return (req, res) => {
    const path = new URL(req.url ?? "/", "http://x").pathname;
    if (path === "/hello") return void (helloHits++, res.writeHead(200, { "content-type": "text/plain" }).end("hello"));
    if (path === "/to-dotted") return void res.writeHead(302, { location: `${plainBase.replace("127.0.0.1", "localhost.")}/hello` }).end();
    if (path === "/to-odd-spelling") return void res.writeHead(302, { location: `${plainBase.replace("127.0.0.1", "LOCALHOST")}/hello` }).end();
    if (path === "/to-hello") return void res.writeHead(302, { location: "/hello" }).end();
    if (path === "/to-denied") return void res.writeHead(302, { location: `https://localhost:${tlsPort}/hello` }).end();
    if (path === "/to-http") return void res.writeHead(301, { location: `${plainBase}/hello` }).end();
    if (path === "/chain") return void res.writeHead(307, { location: `${base()}/to-hello` }).end();
    res.writeHead(404).end();
  };
}

async function started(server: ReturnType<typeof createHttpServer>): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  closers.push(() => new Promise((r) => server.close(r)));
  return (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  withOpenssl.check();
  dir = await mkdtemp(join(tmpdir(), "aops-redirects-"));
  auth = await testAuth(dir);
  closers.push(() => rm(dir, { recursive: true, force: true }));
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], { stdio: "ignore" });
  ca = readFileSync(cert, "utf8");
  const plainPort = await started(createHttpServer(routes(() => plainBase)));
  plainBase = `http://127.0.0.1:${plainPort}`;
  tlsPort = await started(createHttpsServer({ key: readFileSync(key), cert: ca }, routes(() => `https://127.0.0.1:${tlsPort}`)));
});
afterAll(async () => {
  for (const c of closers.splice(0).reverse()) await c();
});

/** The tool server with http_get (allow-list: 127.0.0.1 and localhost) and decisions in a real WAL. */
async function serve(): Promise<{ base: string; walDir: string }> {
  const walDir = await mkdtemp(join(dir, "wal-"));
  const wal = await Wal.open(walDir);
  const policy = policyOf(POLICY);
  const interceptor = new Interceptor({ policy: () => policy, principal: { type: "Agent", id: "test-agent" }, node: {}, sink: new WalDecisionSink(wal) });
  const tools = toolRegistry([httpGetTool({ allowedDomains: ["127.0.0.1", "localhost"], allowPrivateNetworks: true, ca })]);
  const app = createToolServer({ interceptor, tools, policy: () => policy, auth: auth.auth });
  closers.push(async () => {
    await app.close();
    await wal.close();
    policy.engine.dispose();
  });
  return { base: await listen(app), walDir };
}

async function get(base: string, endpoint: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...auth.headers() }, body: JSON.stringify({ kind: "tool.http_get", params: { endpoint } }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function decisions(walDir: string): Promise<Record<string, unknown>[]> {
  const { entries } = await readCommitted(walDir);
  return entries.map((e) => e.event).filter((e) => e.type === "ai.policy.decision");
}

withOpenssl.describe("tool.http_get redirects through the tool server", () => {
  withOpenssl.it("attack 8: a redirect to a host the policy denies is itself decided, denied, and stops the call; the WAL has both decisions", async () => {
    const { base, walDir } = await serve();
    const r = await get(base, `https://127.0.0.1:${tlsPort}/to-denied`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "allow", error: { code: "TOOL_REDIRECT_DENIED" } });
    const message = (r.body.error as { message: string }).message;
    expect(message).toContain(`https://localhost:${tlsPort}/hello`);
    expect(message).toContain("no_localhost");
    const events = await decisions(walDir);
    expect(events.map((e) => [e.tool, e.decision, e.policies, e.follow_up])).toEqual([
      ["tool.http_get", "allow", ["get_allow"], undefined],
      ["tool.http_get", "deny", ["no_localhost"], true],
    ]);
  });

  withOpenssl.it("attack 8: a redirect from https to http is refused, and not fetched", async () => {
    const { base, walDir } = await serve();
    const r = await get(base, `https://127.0.0.1:${tlsPort}/to-http`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: "TOOL_TARGET_NOT_ALLOWED" } });
    expect((r.body.error as { message: string }).message).toContain("from https to http");
    expect(await decisions(walDir)).toHaveLength(1); // the first hop only: the downgrade is refused before anything is asked
  });

  withOpenssl.it("follows allowed hops (https → https, http → http), one recorded decision per hop", async () => {
    const { base, walDir } = await serve();
    expect(await get(base, `https://127.0.0.1:${tlsPort}/chain`)).toMatchObject({ status: 200, body: { output: { status: 200, body: "hello", url: `https://127.0.0.1:${tlsPort}/hello` } } });
    expect(await get(base, `${plainBase}/to-hello`)).toMatchObject({ status: 200, body: { output: { body: "hello", url: `${plainBase}/hello` } } });
    const events = await decisions(walDir);
    expect(events.map((e) => e.decision)).toEqual(["allow", "allow", "allow", "allow", "allow"]); // 3 for the chain, 2 for the plain one
  });

  withOpenssl.it("attack 8: an endpoint spelled differently from the URL fetched (LOCALHOST, %6cocalhost, http:localhost, backslashes for slashes, a tab in the host) is refused with 400 before anything is fetched", async () => {
    const { base, walDir } = await serve();
    const port = new URL(plainBase).port;
    const canonical = `http://localhost:${port}/hello`;
    expect(await get(base, canonical)).toMatchObject({ status: 403, body: { decision: "deny", policies: ["no_localhost"] } });
    const before = helloHits;
    for (const spelling of [`http://LOCALHOST:${port}/hello`, `http://%6cocalhost:${port}/hello`, `http:localhost:${port}/hello`, `http:\\\\localhost:${port}/hello`, `http://loc\talhost:${port}/hello`, `HTTP://127.0.0.1:${port}/hello`, `http://127.0.0.1:${port}/./hello`]) {
      const r = await get(base, spelling);
      expect(r.status, spelling).toBe(400);
      expect(r.body, spelling).toMatchObject({ decision: "deny", error: { code: "INPUT_NOT_REPRESENTABLE", path: "params.endpoint" } });
      const message = (r.body.error as { message: string }).message;
      expect(message).toContain("params.endpoint");
      expect(message).toContain(new URL(spelling).href);
    }
    expect(helloHits).toBe(before);
    // Refused before the decision: each is recorded as a deny naming the path, never as an allow.
    const events = await decisions(walDir);
    expect(events.slice(1).map((e) => [e.decision, String(e.reason).startsWith("INPUT_NOT_REPRESENTABLE: params.endpoint")])).toEqual(Array.from({ length: 7 }, () => ["deny", true]));
    expect(await get(base, `http://127.0.0.1:${port}/hello`)).toMatchObject({ status: 200, body: { output: { body: "hello" } } });
  });

  withOpenssl.it("attack 8: a redirect hop spelled LOCALHOST is judged in its canonical form (localhost) and denied", async () => {
    const { base, walDir } = await serve();
    const r = await get(base, `${plainBase}/to-odd-spelling`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: "TOOL_REDIRECT_DENIED" } });
    expect((r.body.error as { message: string }).message).toContain(`http://localhost:${new URL(plainBase).port}/hello`);
    expect((await decisions(walDir)).map((e) => e.decision)).toEqual(["allow", "deny"]);
  });

  withOpenssl.it("attack 8: a trailing dot in the host (http://localhost.:P/, canonical and allow-listed) does not dodge forbid … like \"*://localhost:*\": 400 naming the dot-less form, first hop and redirect hop, nothing fetched", async () => {
    const { base, walDir } = await serve();
    const port = new URL(plainBase).port;
    const before = helloHits;
    const r = await get(base, `http://localhost.:${port}/hello`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "deny", error: { code: "INPUT_NOT_REPRESENTABLE", path: "params.endpoint" } });
    expect((r.body.error as { message: string }).message).toContain(`http://localhost:${port}/hello`);
    const hop = await get(base, `${plainBase}/to-dotted`);
    expect(hop.status).toBe(400);
    expect(hop.body).toMatchObject({ error: { code: "INPUT_NOT_REPRESENTABLE" } });
    const message = (hop.body.error as { message: string }).message;
    expect(message).toContain("params.endpoint");
    expect(message).toContain(`http://localhost:${port}/hello`);
    expect(helloHits).toBe(before);
    expect((await decisions(walDir)).map((e) => e.decision)).toEqual(["deny", "allow"]);
  });
});
