import { Writable } from "node:stream";
import { createLogger } from "../../src/observability/index.js";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createToolServer } from "../../src/runtime/http-server.js";
import { builtinTools } from "../../src/runtime/tools/index.js";
import type { LoadedPolicy } from "../../src/policy/index.js";
import { EXAMPLE_POLICIES, interceptorFor, listen, mutablePolicy, policyOf, testAuth } from "../helpers/tool-server.js";
import type { TestAuth } from "../helpers/tool-server.js";

const PERMIT_ALL = { name: "permit_all.cedar", text: '@id("permit_all")\npermit (principal, action, resource);' };
const FORBID_BOOM = {
  name: "forbid_boom.cedar",
  text: '@id("no_boom")\nforbid (principal, action == Action::"tool:tool.echo", resource) when { context.params has text && context.params.text == "boom" };',
};
const PERMIT_HTTP_GET = { name: "http_get.cedar", text: '@id("http_get_allow")\npermit (principal, action == Action::"tool:tool.http_get", resource);' };

let dir: string;
let target: Server;
let targetUrl: string;
let auth: TestAuth;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "aops-runtime-http-"));
  auth = await testAuth(dir);
  target = createServer((_req, res) => res.writeHead(200, { "content-type": "text/plain" }).end("from the allow-listed host"));
  await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
  targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/`;
});
afterAll(async () => {
  await new Promise<void>((r) => target.close(() => r()));
  await rm(dir, { recursive: true, force: true });
});

let app: FastifyInstance | undefined;
afterEach(async () => {
  await app?.close();
  app = undefined;
});

/** Starts a tool server (built-ins, 127.0.0.1 allow-listed, shell running in the temp dir) over `policy`. */
async function start(policy: LoadedPolicy | undefined): Promise<{ base: string; policy: ReturnType<typeof mutablePolicy> }> {
  const source = mutablePolicy(policy);
  app = createToolServer({
    interceptor: interceptorFor(source),
    tools: builtinTools({ allowedDomains: ["127.0.0.1"], shell: { cwd: dir, timeoutMs: 5000 } }),
    policy: source,
    auth: auth.auth,
  });
  return { base: await listen(app), policy: source };
}

async function post(base: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${base}/v1/tool`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth.headers(), ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

describe("POST /v1/tool with the example policy (echo allowed, shell forbidden)", () => {
  const example = policyOf(EXAMPLE_POLICIES, "example");

  it("runs an allowed call: 200 with decision, policy_ref and output only", async () => {
    const { base } = await start(example);
    const r = await post(base, { kind: "tool.echo", params: { text: "hello" } });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ decision: "allow", policy_ref: example.ref, output: { text: "hello" } });
  });

  it("refuses a forbidden call with 403 and never runs it", async () => {
    const { base } = await start(example);
    const marker = join(dir, "shell-ran-403");
    const r = await post(base, { kind: "tool.shell", params: { command: `touch ${marker}` } });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ decision: "deny", policy_ref: example.ref, policies: ["shell_deny"] });
    expect(typeof r.body.reason).toBe("string");
    expect(Object.keys(r.body).sort()).toEqual(["decision", "policies", "policy_ref", "reason"]);
    expect(existsSync(marker)).toBe(false);
  });

  it("refuses a tool no policy permits (default deny)", async () => {
    const { base } = await start(example);
    const r = await post(base, { kind: "tool.http_get", params: { endpoint: targetUrl } });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ decision: "deny", policies: [] });
  });

  it("refuses an unknown tool the policy does not permit (403, not 400)", async () => {
    const { base } = await start(example);
    expect((await post(base, { kind: "tool.nope" })).status).toBe(403);
  });

  it("answers 400 with decision allow when an allowed call has bad params", async () => {
    const { base } = await start(example);
    const r = await post(base, { kind: "tool.echo", params: { txt: "typo" } });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "allow", policy_ref: example.ref, error: { code: "TOOL_PARAMS_INVALID" } });
    expect((r.body.error as { message: string }).message).toContain("text");
  });

  it("defaults params to {}", async () => {
    const { base } = await start(example);
    const r = await post(base, { kind: "tool.echo" });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "allow", error: { code: "TOOL_PARAMS_INVALID" } });
  });
});

describe("when no policy is loaded", () => {
  it("refuses every call, even harmless ones, and says it is not ready", async () => {
    const { base } = await start(undefined);
    const marker = join(dir, "shell-ran-nopolicy");
    for (const call of [{ kind: "tool.echo", params: { text: "x" } }, { kind: "tool.shell", params: { command: `touch ${marker}` } }]) {
      const r = await post(base, call);
      expect(r.status).toBe(403);
      expect(r.body).toMatchObject({ decision: "deny", policy_ref: "none" });
    }
    expect(existsSync(marker)).toBe(false);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false });
  });

  it("starts allowing once a policy is loaded", async () => {
    const { base, policy } = await start(undefined);
    expect((await post(base, { kind: "tool.echo", params: { text: "x" } })).status).toBe(403);
    policy.set(policyOf(EXAMPLE_POLICIES));
    expect((await post(base, { kind: "tool.echo", params: { text: "x" } })).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });
});

describe("permit-all plus one forbid", () => {
  const policy = policyOf([PERMIT_ALL, FORBID_BOOM], "permit-all");

  it("lets the forbid win over the permit", async () => {
    const { base } = await start(policy);
    expect((await post(base, { kind: "tool.echo", params: { text: "fine" } })).status).toBe(200);
    const r = await post(base, { kind: "tool.echo", params: { text: "boom" } });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ decision: "deny", policies: ["no_boom"] });
  });

  it("really runs tool.shell when a policy permits it", async () => {
    const { base } = await start(policy);
    const marker = join(dir, "shell-ran-permitted");
    const r = await post(base, { kind: "tool.shell", params: { command: `touch ${marker} && echo done` } });
    expect(r.status).toBe(200);
    expect(r.body.output).toMatchObject({ exit_code: 0, stdout: "done\n" });
    expect(existsSync(marker)).toBe(true);
  });

  it("answers 400 TOOL_UNKNOWN for an allowed call to a tool that does not exist", async () => {
    const { base } = await start(policy);
    const r = await post(base, { kind: "tool.nope" });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "allow", error: { code: "TOOL_UNKNOWN" } });
  });
});

describe("tool.http_get over HTTP", () => {
  const policy = policyOf([...EXAMPLE_POLICIES, PERMIT_HTTP_GET]);

  it("fetches an allow-listed host", async () => {
    const { base } = await start(policy);
    const r = await post(base, { kind: "tool.http_get", params: { endpoint: targetUrl } });
    expect(r.status).toBe(200);
    expect(r.body.output).toMatchObject({ status: 200, body: "from the allow-listed host", truncated: false });
  });

  it("answers 400 TOOL_TARGET_NOT_ALLOWED for a host off the allow-list", async () => {
    const { base } = await start(policy);
    const r = await post(base, { kind: "tool.http_get", params: { endpoint: targetUrl.replace("127.0.0.1", "localhost") } });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "allow", policy_ref: policy.ref, error: { code: "TOOL_TARGET_NOT_ALLOWED" } });
  });
});

describe("malformed requests and wrong methods", () => {
  const example = policyOf(EXAMPLE_POLICIES, "example");

  it.each([
    ["invalid JSON", "{not json"],
    ["missing kind", { params: {} }],
    ["kind not a string (no coercion)", { kind: 12 }],
    ["params not an object", { kind: "tool.echo", params: ["text"] }],
    ["params null", { kind: "tool.echo", params: null }],
    ["an unknown top-level field", { kind: "tool.echo", params: { text: "x" }, sudo: true }],
    ["an empty body", ""],
  ])("answers 400 with decision deny for %s", async (_what, body) => {
    const { base } = await start(example);
    const r = await post(base, body);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "deny", policy_ref: example.ref, error: { code: "REQUEST_INVALID" } });
  });

  it("reports policy_ref none on a malformed request when no policy is loaded", async () => {
    const { base } = await start(undefined);
    expect((await post(base, "{")).body).toMatchObject({ decision: "deny", policy_ref: "none" });
  });

  it("answers 415 for a body that is not JSON, still with decision and policy_ref", async () => {
    const { base } = await start(example);
    const r = await post(base, "kind=tool.echo", { "content-type": "application/x-www-form-urlencoded" });
    expect(r.status).toBe(415);
    expect(r.body).toMatchObject({ decision: "deny", policy_ref: example.ref, error: { code: "MEDIA_TYPE_UNSUPPORTED" } });
  });

  it("answers 415 for a text/plain body (no text parser), still with decision and policy_ref", async () => {
    const { base } = await start(example);
    const r = await post(base, JSON.stringify({ kind: "tool.echo", params: { text: "x" } }), { "content-type": "text/plain" });
    expect(r.status).toBe(415);
    expect(r.body).toMatchObject({ decision: "deny", policy_ref: example.ref, error: { code: "MEDIA_TYPE_UNSUPPORTED" } });
  });

  it("answers 413 for a body over 1 MiB", async () => {
    const { base } = await start(example);
    const r = await post(base, { kind: "tool.echo", params: { text: "a".repeat(1024 * 1024) } });
    expect(r.status).toBe(413);
    expect(r.body).toMatchObject({ decision: "deny", error: { code: "REQUEST_TOO_LARGE" } });
  });

  it.each(["GET", "PUT", "DELETE", "PATCH"])("answers %s with 405, Allow: POST and decision deny", async (method) => {
    const { base } = await start(example);
    const res = await fetch(`${base}/v1/tool`, { method, ...(method === "GET" ? { headers: auth.headers() } : { headers: { "content-type": "application/json", ...auth.headers() }, body: "{broken" }) });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
    expect(await res.json()).toMatchObject({ decision: "deny", policy_ref: example.ref, error: { code: "METHOD_NOT_ALLOWED" } });
  });

  it("answers TRACE /v1/tool with 405 and the decision body; PUT /mcp and POST /healthz with 405 and Allow", async () => {
    const source = mutablePolicy(example);
    const app = createToolServer({ interceptor: interceptorFor(source), tools: builtinTools(), policy: source, auth: auth.auth });
    try {
      // fetch() refuses to send TRACE, so these go through inject.
      const trace = await app.inject({ method: "TRACE", url: "/v1/tool", headers: auth.headers() });
      expect(trace.statusCode).toBe(405);
      expect(trace.headers.allow).toBe("POST");
      expect(JSON.parse(trace.body)).toMatchObject({ decision: "deny", policy_ref: example.ref, error: { code: "METHOD_NOT_ALLOWED" } });
      for (const method of ["PUT", "PATCH", "TRACE"] as const) {
        const mcp = await app.inject({ method, url: "/mcp", headers: { "content-type": "application/json", ...auth.headers() }, payload: "{}" });
        expect(mcp.statusCode, method).toBe(405);
        expect(mcp.headers.allow, method).toBe("POST");
      }
      const health = await app.inject({ method: "POST", url: "/healthz", headers: { "content-type": "application/json" }, payload: "{}" });
      expect(health.statusCode).toBe(405);
      expect(health.headers.allow).toBe("GET, HEAD");
      expect(health.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(health.body)).toMatchObject({ code: "METHOD_NOT_ALLOWED", status: 405 });
    } finally {
      await app.close();
    }
  });

  it("refuses browser requests from another origin (DNS-rebinding guard)", async () => {
    const { base } = await start(example);
    const marker = join(dir, "shell-ran-origin");
    const r = await post(base, { kind: "tool.shell", params: { command: `touch ${marker}` } }, { origin: "http://evil.example" });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ decision: "deny", policies: [] });
    expect(r.body.reason).toContain("origin");
    expect(existsSync(marker)).toBe(false);
  });
});

it("attack 5: GET, OPTIONS and DELETE /v1/tool from a foreign Origin get a 403 problem response, not a 500 and an error log line", async () => {
  const lines: string[] = [];
  const logger = createLogger({ name: "test", level: "warn", destination: new Writable({ write: (c: Buffer, _e, done) => void (lines.push(c.toString()), done()) }) });
  const src = mutablePolicy(policyOf([PERMIT_ALL]));
  const app = createToolServer({ interceptor: interceptorFor(src), tools: builtinTools(), policy: src, auth: auth.auth, logger });
  try {
    for (const method of ["GET", "OPTIONS", "DELETE", "POST"] as const) {
      const r = await app.inject({ method, url: "/v1/tool", headers: { host: "127.0.0.1", origin: "http://evil.example" } });
      expect(r.statusCode, method).toBe(403);
      expect(r.headers["content-type"], method).toContain("application/problem+json");
      expect(r.json(), method).toMatchObject({ status: 403, code: "ORIGIN_NOT_ALLOWED", decision: "deny", policies: [] });
    }
    expect(lines).toEqual([]);
  } finally {
    await app.close();
  }
});

describe("health and status", () => {
  it("reports liveness, readiness, tools and decision counters", async () => {
    const example = policyOf(EXAMPLE_POLICIES, "example");
    const { base } = await start(example);
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: "ok" });
    expect(await (await fetch(`${base}/readyz`)).json()).toEqual({ ready: true, policy_ref: example.ref });
    await post(base, { kind: "tool.echo", params: { text: "x" } });
    await post(base, { kind: "tool.shell", params: { command: "true" } });
    await post(base, { kind: "tool.echo", params: {} });
    const status = (await (await fetch(`${base}/v1/status`, { headers: auth.headers() })).json()) as Record<string, unknown>;
    expect(status).toMatchObject({
      policy_ref: example.ref,
      policy_loaded: true,
      policy_count: 2,
      transports: ["http", "mcp"],
      decisions: { allow: 1, deny: 1, failed: 1, by_transport: { http: { allow: 1, deny: 1, failed: 1 } } },
    });
    expect((status.tools as { name: string }[]).map((t) => t.name)).toEqual(["tool.echo", "tool.http_get", "tool.shell"]);
  });
});

describe("errors outside the tool-call contract answer RFC 9457 problem details", () => {
  const example = policyOf(EXAMPLE_POLICIES, "example");

  it("an unknown route: 404 application/problem+json with code NOT_FOUND", async () => {
    const source = mutablePolicy(example);
    app = createToolServer({ interceptor: interceptorFor(source), tools: builtinTools(), policy: source, auth: auth.auth });
    const r = await app.inject({ method: "GET", url: "/v1/nothing-here" });
    expect(r.statusCode).toBe(404);
    expect(r.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(r.body)).toEqual({ type: "urn:autonomyops:error:NOT_FOUND", title: "Not found", status: 404, detail: "no route GET /v1/nothing-here", code: "NOT_FOUND" });
  });

  it("a failing status route: 500 INTERNAL without the failure's message, which goes to the log instead", async () => {
    const source = mutablePolicy(example);
    const lines: string[] = [];
    const destination = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString("utf8")); cb(); } });
    const logger = createLogger({ name: "autonomy.runtime.http", level: "warn", destination });
    app = createToolServer({ interceptor: interceptorFor(source), tools: builtinTools(), policy: source, auth: auth.auth, logger, telemetry: () => { throw new Error("token=s3cret"); } });
    const r = await app.inject({ method: "GET", url: "/v1/status", headers: auth.headers() });
    expect(r.statusCode).toBe(500);
    expect(r.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(JSON.parse(r.body)).toMatchObject({ type: "urn:autonomyops:error:INTERNAL", status: 500, code: "INTERNAL" });
    expect(r.body).not.toContain("s3cret");
    const logged = lines.map((l) => JSON.parse(l) as { level: number; msg: string; err?: { message?: string } });
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatchObject({ level: 50, msg: "request failed", err: { message: "token=s3cret" } });
  });

  it("a malformed tool call keeps the decision-body contract, not problem details", async () => {
    const source = mutablePolicy(example);
    app = createToolServer({ interceptor: interceptorFor(source), tools: builtinTools(), policy: source, auth: auth.auth });
    const r = await app.inject({ method: "POST", url: "/v1/tool", payload: "{x", headers: { "content-type": "application/json", ...auth.headers() } });
    expect(r.statusCode).toBe(400);
    expect(r.headers["content-type"]).toMatch(/^application\/json/);
    expect(JSON.parse(r.body)).toMatchObject({ decision: "deny", policy_ref: example.ref, error: { code: "REQUEST_INVALID" } });
  });
});
