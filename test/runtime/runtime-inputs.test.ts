/**
 * Attack 7: what the policy sees is what the tool gets. Every input the Cedar
 * context cannot hold exactly (null, unsafe integers, duplicate keys, …) is
 * refused with 400 naming its path, over HTTP, MCP (HTTP and
 * stdio) and for proxied upstream tools; everything accepted reaches the tool,
 * or the upstream, exactly as the policy judged it.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import fc from "fast-check";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { Mock } from "vitest";
import { fromCedar, toCedar } from "../../src/policy/cedar/index.js";
import type { DecisionRequest, PolicyEngine } from "../../src/policy/index.js";
import { createToolServer } from "../../src/runtime/http-server.js";
import { Interceptor } from "../../src/runtime/interceptor.js";
import { serveMcpStdio } from "../../src/runtime/mcp-server.js";
import { toolRegistry } from "../../src/runtime/tools/index.js";
import type { Tool } from "../../src/runtime/types.js";
import { connectUpstreams } from "../../src/runtime/upstream.js";
import { WalDecisionSink } from "../../src/runtime/wal-sink.js";
import { Wal, readCommitted } from "../../src/telemetry/index.js";
import { fakeLoadedPolicy } from "../helpers/policies.js";
import { listen, policyOf, testAuth } from "../helpers/tool-server.js";
import type { TestAuth } from "../helpers/tool-server.js";

/** `tool.probe` is allowed unless the call says `force` at all. */
const FORCE_POLICY = [
  { name: "probe.cedar", text: '@id("probe_allow")\npermit (principal, action == Action::"tool:tool.probe", resource);' },
  { name: "force.cedar", text: '@id("no_force")\nforbid (principal, action, resource) when { context.params has force };' },
  { name: "up.cedar", text: '@id("up_allow")\npermit (principal, action == Action::"tool:up.record", resource);' },
];

function probeTool(): Tool & { spy: Mock<Tool["run"]> } {
  const spy = vi.fn<Tool["run"]>((p) => Promise.resolve({ output: { got: p } }));
  return { name: "tool.probe", description: "records what it gets", inputSchema: { type: "object" }, run: spy, spy };
}

let dir: string;
let auth: TestAuth;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "aops-inputs-"));
  auth = await testAuth(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

/** A tool server whose decisions go to a real telemetry WAL. */
async function serve(extra: Tool[] = []): Promise<{ base: string; probe: ReturnType<typeof probeTool>; walDir: string; interceptor: Interceptor }> {
  const walDir = await mkdtemp(join(dir, "wal-"));
  const wal = await Wal.open(walDir);
  const policy = policyOf(FORCE_POLICY);
  const interceptor = new Interceptor({ policy: () => policy, principal: { type: "Agent", id: "test-agent" }, node: { id: "n" }, sink: new WalDecisionSink(wal) });
  const probe = probeTool();
  const app = createToolServer({ interceptor, tools: toolRegistry([probe, ...extra]), policy: () => policy, auth: auth.auth });
  cleanups.push(async () => {
    await app.close();
    await wal.close();
    policy.engine.dispose();
  });
  return { base: await listen(app), probe, walDir, interceptor };
}

async function postRaw(base: string, body: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${base}/v1/tool`, { method: "POST", headers: { "content-type": "application/json", ...auth.headers() }, body });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function decisions(walDir: string): Promise<Record<string, unknown>[]> {
  const { entries } = await readCommitted(walDir);
  return entries.map((e) => e.event).filter((e) => e.type === "ai.policy.decision");
}

describe("faithful inputs over HTTP", () => {
  it('attack 7: {"force": null} is refused with 400 naming params.force, not passed to the tool', async () => {
    const { base, probe, walDir } = await serve();
    const r = await postRaw(base, '{"kind":"tool.probe","params":{"force":null}}');
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "deny", error: { code: "INPUT_NOT_REPRESENTABLE", path: "params.force" } });
    expect((r.body.error as { message: string }).message).toContain("params.force");
    expect(probe.spy).not.toHaveBeenCalled();
    // Recorded like any refusal the interceptor makes: a deny naming the path.
    const events = await decisions(walDir);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ tool: "tool.probe", decision: "deny", transport: "http" });
    expect(String(events[0]?.reason)).toContain("INPUT_NOT_REPRESENTABLE: params.force");
    // The same call without the key is allowed and the tool gets exactly it.
    expect(await postRaw(base, '{"kind":"tool.probe","params":{"level":2}}')).toMatchObject({ status: 200, body: { output: { got: { level: 2 } } } });
  });

  it.each([
    ['{"n":9007199254740993}', "params.n", "beyond"],
    ['{"n":1e400}', "params.n", "not a JSON number"],
    ['{"f":0.123456}', "params.f", "4 decimal places"],
    ['{"deep":{"x":[null]}}', "params.deep.x[0]", "null"],
    ['{"s":"\\ud800"}', "params.s", "surrogate"],
    ['{"__extn":{"fn":"decimal","arg":"1.0"}}', "params.__extn", "escape"],
  ])("refuses %s with 400 naming %s", async (params, path, why) => {
    const { base, probe } = await serve();
    const r = await postRaw(base, `{"kind":"tool.probe","params":${params}}`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: "INPUT_NOT_REPRESENTABLE", path } });
    expect((r.body.error as { message: string }).message).toContain(why);
    expect(probe.spy).not.toHaveBeenCalled();
  });

  it("refuses a key given twice (JSON.parse would keep the last) before any decision", async () => {
    const { base, probe, walDir } = await serve();
    const r = await postRaw(base, '{"kind":"tool.probe","params":{"level":1,"level":2}}');
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ decision: "deny", error: { code: "INPUT_NOT_REPRESENTABLE", path: "params.level" } });
    expect(probe.spy).not.toHaveBeenCalled();
    expect(await decisions(walDir)).toEqual([]); // a malformed body never reaches a decision, as before
  });

  it("attack 7: a key given twice after a UTF-8 BOM is refused too (400 on /v1/tool and /mcp), not resolved to the last value", async () => {
    const { base, probe } = await serve();
    const r = await postRaw(base, '\uFEFF{"kind":"tool.probe","params":{"level":1,"level":2}}');
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: "INPUT_NOT_REPRESENTABLE", path: "params.level" } });
    const mcp = await fetch(`${base}/mcp`, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...auth.headers() },
      body: '\uFEFF{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool.probe","arguments":{"level":1,"level":2}}}',
    });
    expect(mcp.status).toBe(400);
    expect(probe.spy).not.toHaveBeenCalled();
    // A BOM before a well-formed body is still accepted, as Fastify always did.
    expect(await postRaw(base, '\uFEFF{"kind":"tool.probe","params":{"level":2}}')).toMatchObject({ status: 200, body: { output: { got: { level: 2 } } } });
  });

  it("refuses a depth bomb with 400 while reading it", async () => {
    const { base } = await serve();
    const r = await postRaw(base, `{"kind":"tool.probe","params":{"a":${"[".repeat(100_000)}${"]".repeat(100_000)}}}`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: { code: "INPUT_NOT_REPRESENTABLE" } });
  });

  it("for arbitrary JSON params: either 400 naming a path, or the tool gets exactly the params sent", async () => {
    const { base, probe } = await serve();
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.oneof(fc.constant("force"), fc.string({ maxLength: 4 })), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }), async (params) => {
        probe.spy.mockClear();
        const body = JSON.stringify({ kind: "tool.probe", params });
        const r = await postRaw(base, body);
        const sent = (JSON.parse(body) as { params: Record<string, unknown> }).params;
        if (r.status === 400) {
          expect(r.body).toMatchObject({ error: { code: "INPUT_NOT_REPRESENTABLE" } });
          expect((r.body.error as { path: string }).path).toMatch(/^params/);
          expect(probe.spy).not.toHaveBeenCalled();
        } else {
          expect(r.status, JSON.stringify(r.body)).toBe(Object.hasOwn(sent, "force") ? 403 : 200);
          if (r.status === 200) expect(probe.spy.mock.calls[0]?.[0]).toStrictEqual(sent);
        }
      }),
      { numRuns: 150 },
    );
  });
});

describe("faithful inputs: arrays keep their order and duplicates", () => {
  it('attack 7: a permit for argv == ["cp","notes.txt","/etc/motd"] (ordered) does not allow ["cp","/etc/motd","notes.txt"]: the copy cannot run the other way', async () => {
    const cond = 'context.params.argv.length == 3 && context.params.argv["0"] == "cp" && context.params.argv["1"] == "notes.txt" && context.params.argv["2"] == "/etc/motd"';
    for (const text of [`@id("cp_notes")\npermit (principal, action == Action::"tool:fs.run", resource) when { ${cond} };`, '@id("cp_notes")\npermit (principal, action == Action::"tool:fs.run", resource) when { context.params.argv == ["cp", "notes.txt", "/etc/motd"] };']) {
      const policy = policyOf([{ name: "p.cedar", text }]);
      const got: unknown[] = [];
      const tool: Tool = { name: "fs.run", description: "", inputSchema: {}, run: (p) => (got.push(p), Promise.resolve({ output: null })) };
      const gate = new Interceptor({ policy: () => policy, principal: { type: "Agent", id: "a" }, node: {} });
      expect((await gate.call({ kind: "fs.run", params: { argv: ["cp", "/etc/motd", "notes.txt"] } }, tool, "direct")).decision, text).toBe("deny");
      expect(got).toEqual([]);
      // The ordered form allows exactly the order it names; the set-style literal allows no array at all (fails closed).
      const sameOrder = await gate.call({ kind: "fs.run", params: { argv: ["cp", "notes.txt", "/etc/motd"] } }, tool, "direct");
      expect(sameOrder.decision, text).toBe(text.includes(".length") ? "allow" : "deny");
      policy.engine.dispose();
    }
  });

  it('attack 7: {"tags":["a","b","a"]} reaches the tool with its duplicate, and the policy saw it (length 3)', async () => {
    const policy = policyOf([{ name: "p.cedar", text: 'permit (principal, action, resource) when { context.params.tags.length == 3 && context.params.tags.items.contains("b") };' }]);
    const probe = probeTool();
    const gate = new Interceptor({ policy: () => policy, principal: { type: "Agent", id: "a" }, node: {} });
    expect(await gate.call({ kind: "tool.probe", params: { tags: ["a", "b", "a"] } }, probe, "direct")).toMatchObject({ decision: "allow", ok: true });
    expect(probe.spy.mock.calls[0]?.[0]).toStrictEqual({ tags: ["a", "b", "a"] });
    expect((await gate.call({ kind: "tool.probe", params: { tags: ["a", "b"] } }, probe, "direct")).decision).toBe("deny");
    policy.engine.dispose();
  });
});

describe("faithful inputs (interceptor property)", () => {
  it("for arbitrary values: either refused with a path, or the Cedar value the policy saw round-trips to exactly what the tool received", async () => {
    const seen: DecisionRequest[] = [];
    const engine: PolicyEngine = { kind: "cedar", policyCount: 1, evaluate: (req) => (seen.push(req), { decision: "allow", policies: ["p"], errors: [] }), dispose: () => undefined };
    const loaded = fakeLoadedPolicy(engine);
    const gate = new Interceptor({ policy: () => loaded, principal: { type: "Agent", id: "a" }, node: {} });
    const probe = probeTool();
    const anyValue = fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.anything({ maxDepth: 3, withBigInt: true, withNullPrototype: true, withSparseArray: true }));
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.string({ maxLength: 3 }), anyValue, { maxKeys: 4 }), async (params) => {
        seen.length = 0;
        probe.spy.mockClear();
        let refused: unknown;
        try {
          await gate.call({ kind: "tool.probe", params }, probe, "direct");
        } catch (e) {
          refused = e;
        }
        if (refused !== undefined) {
          expect(refused).toMatchObject({ code: "INPUT_NOT_REPRESENTABLE", details: { path: expect.stringMatching(/^params/) as unknown } });
          expect(probe.spy).not.toHaveBeenCalled();
          return;
        }
        const judged = (seen[0]?.context as { params: unknown }).params;
        const received = probe.spy.mock.calls[0]?.[0];
        const roundTrip = fromCedar(toCedar(judged));
        expect(roundTrip).toStrictEqual(received); // Object.is on numbers: -0 ≠ 0
        expect(JSON.stringify(roundTrip)).toBe(JSON.stringify(received)); // key order too
        expect(JSON.stringify(received)).toBe(JSON.stringify(params));
      }),
      { numRuns: 1000 },
    );
  });
});

describe("faithful inputs over MCP", () => {
  it("refuses null arguments on /mcp with an error naming params.force; the tool never runs", async () => {
    const { base, probe } = await serve();
    const client = new Client({ name: "inputs-test", version: "1.0.0" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: auth.headers() } }));
    cleanups.push(() => client.close());
    await expect(client.callTool({ name: "tool.probe", arguments: { force: null } })).rejects.toMatchObject({
      message: expect.stringMatching(/params\.force: null/) as unknown,
      data: { code: "INPUT_NOT_REPRESENTABLE", status: 400, path: "params.force" },
    });
    expect(probe.spy).not.toHaveBeenCalled();
  });

  it("refuses duplicate keys on /mcp with 400", async () => {
    const { base, probe } = await serve();
    const body = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tool.probe","arguments":{"level":1,"level":2}}}';
    const res = await fetch(`${base}/mcp`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...auth.headers() }, body });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain("params.arguments.level");
    expect(probe.spy).not.toHaveBeenCalled();
  });

  it("refuses duplicate keys on stdio with a JSON-RPC error naming the path; the tool never runs", async () => {
    const policy = policyOf(FORCE_POLICY);
    cleanups.push(() => Promise.resolve(policy.engine.dispose()));
    const probe = probeTool();
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const lines: Record<string, unknown>[] = [];
    let buf = "";
    stdout.on("data", (b: Buffer) => {
      buf += b.toString("utf8");
      let nl: number;
      while ((nl = buf.indexOf("\n")) !== -1) {
        lines.push(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>);
        buf = buf.slice(nl + 1);
      }
    });
    const interceptor = new Interceptor({ policy: () => policy, principal: { type: "Agent", id: "a" }, node: {} });
    const served = await serveMcpStdio({ interceptor, tools: toolRegistry([probe]), stdin, stdout });
    cleanups.push(() => served.close());
    const waitFor = async (id: number): Promise<Record<string, unknown>> => {
      for (let i = 0; i < 100; i++) {
        const found = lines.find((l) => l.id === id);
        if (found) return found;
        await new Promise((r) => setTimeout(r, 20));
      }
      throw new Error(`no answer to ${id}`);
    };
    stdin.write('{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}\n');
    await waitFor(1);
    stdin.write('{"jsonrpc":"2.0","method":"notifications/initialized"}\n');
    stdin.write('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"tool.probe","arguments":{"level":1,"level":2}}}\n');
    expect(await waitFor(2)).toMatchObject({ error: { code: -32600, data: { code: "INPUT_NOT_REPRESENTABLE", path: "params.arguments.level" } } });
    stdin.write('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"tool.probe","arguments":{"force":null}}}\n');
    expect(JSON.stringify(await waitFor(3))).toContain("params.force");
    expect(probe.spy).not.toHaveBeenCalled();
    stdin.write('{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"tool.probe","arguments":{"level":1}}}\n');
    expect(await waitFor(4)).toMatchObject({ result: { structuredContent: { got: { level: 1 } } } });
  });
});

describe("faithful inputs to upstream MCP servers (confused deputy)", () => {
  it("the upstream gets exactly the arguments the policy judged, and never the ones it refused", async () => {
    const record = join(dir, `record-${Date.now()}.jsonl`);
    const ups = await connectUpstreams([{ name: "up", command: [process.execPath, new URL("../fixtures/mcp-upstream-record.js", import.meta.url).pathname], env: { RECORD_FILE: record } }]);
    cleanups.push(() => ups.close());
    const { base } = await serve([...ups.tools.values()]);
    const args = { b: 1.5, a: [3, 1, 2], s: "ü\u{1F600}\n", nested: { z: true, y: [{ k: "v" }, { k: "w" }] }, big: 9007199254740991 };
    const ok = await postRaw(base, JSON.stringify({ kind: "up.record", params: args }));
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(await postRaw(base, '{"kind":"up.record","params":{"force":null}}')).toMatchObject({ status: 400, body: { error: { path: "params.force" } } });
    expect(await postRaw(base, '{"kind":"up.record","params":{"n":18446744073709551616}}')).toMatchObject({ status: 400, body: { error: { path: "params.n" } } });
    const got = readFileSync(record, "utf8").trim().split("\n");
    expect(got).toEqual([JSON.stringify(args)]);
  });
});
