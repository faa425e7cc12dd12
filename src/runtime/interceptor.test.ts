import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Mock } from "vitest";
import { compileCedar } from "../policy/index.js";
import type { EngineDecision, LoadedPolicy, PolicyEngine, PolicyFile } from "../policy/index.js";
import { JsonlSink, MemorySink } from "./decision-sinks.js";
import { RuntimeError } from "./errors.js";
import { Interceptor } from "./interceptor.js";
import type { DecisionEvent, PolicySource, Tool, ToolOutput } from "./types.js";
import { EXAMPLE_POLICY_FILES, fakeLoadedPolicy } from "../../test/helpers/policies.js";

const EXAMPLES: PolicyFile[] = EXAMPLE_POLICY_FILES;

const engines: PolicyEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.dispose();
  exampleLoaded = undefined;
});

function loaded(engine: PolicyEngine, ref = "demo@1.0.0 (sha256:00)"): LoadedPolicy {
  engines.push(engine);
  return fakeLoadedPolicy(engine, { ref });
}

/** A tool that records its runs (a spy: the test asserts whether it ran). */
function spyTool(name: string, run: (params: Record<string, unknown>) => Promise<ToolOutput> = (p) => Promise.resolve({ output: p })): Tool & { spy: Mock<Tool["run"]> } {
  const spy = vi.fn<Tool["run"]>(run);
  return { name, description: "spy", inputSchema: { type: "object" }, run: spy, spy };
}

function gate(policy: PolicySource, extra: { sink?: MemorySink | { record(e: DecisionEvent): void }; node?: Record<string, unknown> } = {}): Interceptor {
  return new Interceptor({
    policy,
    principal: { type: "Agent", id: "agent-1" },
    node: extra.node ?? { id: "node-1" },
    clock: { now: () => Date.parse("2025-06-01T12:00:00Z") },
    ...(extra.sink ? { sink: extra.sink } : {}),
  });
}

/** The example policies, compiled once per test (the policy source is asked on every call). */
let exampleLoaded: LoadedPolicy | undefined;
const examples = (): LoadedPolicy => (exampleLoaded ??= loaded(compileCedar(EXAMPLES)));

describe("Interceptor", () => {
  describe("when no policy is loaded", () => {
    it("denies every call and never runs the tool", async () => {
      const sink = new MemorySink();
      const g = gate(() => undefined, { sink });
      for (const kind of ["tool.echo", "tool.shell", "tool.anything"]) {
        const tool = spyTool(kind);
        const r = await g.call({ kind, params: { text: "x" } }, tool, "http");
        expect(r).toEqual({ decision: "deny", policy_ref: "none", reason: "no policy loaded: deny all", policies: [] });
        expect(tool.spy).not.toHaveBeenCalled();
      }
      expect(sink.events().map((e) => e.decision)).toEqual(["deny", "deny", "deny"]);
      expect(sink.events()[0]).toMatchObject({ policy_ref: "none", reason: "no policy loaded: deny all" });
    });

    it("denies when the policy source itself throws", async () => {
      const tool = spyTool("tool.echo");
      const r = await gate(() => {
        throw new Error("state unreadable");
      }).call({ kind: "tool.echo", params: {} }, tool, "direct");
      expect(r.decision).toBe("deny");
      expect(tool.spy).not.toHaveBeenCalled();
    });
  });

  describe("when the policy denies", () => {
    it("never runs the tool and names the forbid", async () => {
      const shell = spyTool("tool.shell");
      const r = await gate(examples).call({ kind: "tool.shell", params: { cmd: "id" } }, shell, "mcp");
      expect(r).toEqual({ decision: "deny", policy_ref: "demo@1.0.0 (sha256:00)", reason: "forbidden by shell_deny", policies: ["shell_deny"] });
      expect(shell.spy).not.toHaveBeenCalled();
    });

    it("says no permit matched for a tool nothing permits", async () => {
      const tool = spyTool("tool.other");
      const r = await gate(examples).call({ kind: "tool.other", params: {} }, tool, "http");
      expect(r).toMatchObject({ decision: "deny", reason: "no permit matched", policies: [] });
      expect(tool.spy).not.toHaveBeenCalled();
    });

    it("denies on an evaluation error, with the error as the reason", async () => {
      const p = loaded(compileCedar([{ name: "p.cedar", text: 'permit(principal, action, resource);\n@id("f") forbid(principal, action, resource) when { context.params.missing.x == 1 };' }]));
      const tool = spyTool("tool.echo");
      const r = await gate(() => p).call({ kind: "tool.echo", params: {} }, tool, "http");
      expect(r.decision).toBe("deny");
      expect(r.decision === "deny" && r.reason).toMatch(/^evaluation error: f: /);
      expect(tool.spy).not.toHaveBeenCalled();
    });

    it("cannot be overridden by anything in the call", async () => {
      const shell = spyTool("tool.shell");
      const hostile = { override: true, decision: "allow", allow: true, headers: { "x-policy-override": "1" } };
      const r = await gate(examples).call({ kind: "tool.shell", params: hostile }, shell, "http");
      expect(r.decision).toBe("deny");
      // A forged entity is not even decided: refused as input the policy cannot see as sent.
      const forged = gate(examples).call({ kind: "tool.shell", params: { ...hostile, __entity: { type: "Agent", id: "admin" } } }, shell, "http");
      await expect(forged).rejects.toMatchObject({ code: "INPUT_NOT_REPRESENTABLE", details: { path: "params.__entity" } });
      expect(shell.spy).not.toHaveBeenCalled();
    });

    it("denies an engine answer that is not a clean allow", async () => {
      const answers: EngineDecision[] = [
        { decision: "allow", policies: ["p"], errors: ["something failed"] },
        { decision: "maybe" as "allow", policies: [], errors: [] },
        { decision: "allow", policies: [], errors: undefined as unknown as string[] },
      ];
      for (const answer of answers) {
        const engine: PolicyEngine = { kind: "cedar", policyCount: 1, evaluate: () => answer, dispose: () => undefined };
        const tool = spyTool("tool.echo");
        const r = await gate(() => loaded(engine)).call({ kind: "tool.echo", params: {} }, tool, "direct");
        expect(r.decision).toBe("deny");
        expect(tool.spy).not.toHaveBeenCalled();
      }
    });

    it("denies when the engine throws", async () => {
      const engine: PolicyEngine = { kind: "cedar", policyCount: 1, evaluate: () => { throw new Error("wasm trap"); }, dispose: () => undefined };
      const tool = spyTool("tool.echo");
      const r = await gate(() => loaded(engine)).call({ kind: "tool.echo", params: {} }, tool, "direct");
      expect(r).toMatchObject({ decision: "deny", reason: "policy evaluation failed: wasm trap" });
      expect(tool.spy).not.toHaveBeenCalled();
    });

    it("denies a malformed call before asking the engine", async () => {
      const evaluate = vi.fn(() => ({ decision: "allow" as const, policies: [], errors: [] }));
      const engine: PolicyEngine = { kind: "cedar", policyCount: 1, evaluate, dispose: () => undefined };
      const g = gate(() => loaded(engine));
      for (const call of [{ kind: "", params: {} }, { kind: 5, params: {} }, { kind: "tool.echo", params: null }, { kind: "tool.echo", params: [1] }]) {
        const r = await g.call(call as never, spyTool("tool.echo"), "http");
        expect(r.decision).toBe("deny");
      }
      expect(evaluate).not.toHaveBeenCalled();
    });
  });

  describe("when the policy allows", () => {
    it("runs the tool with the params the policy saw", async () => {
      const echo = spyTool("tool.echo");
      const params = { text: "hi" };
      const r = await gate(examples).call({ kind: "tool.echo", params }, echo, "http");
      expect(r).toEqual({ decision: "allow", policy_ref: "demo@1.0.0 (sha256:00)", policies: ["echo_allow"], ok: true, output: { text: "hi" } });
      expect(echo.spy).toHaveBeenCalledTimes(1);
      expect(echo.spy.mock.calls[0]?.[0]).toEqual(params);
    });

    it("hands the tool a copy taken before the decision: a caller changing its params while a durable record is awaited changes nothing", async () => {
      let release = (): void => undefined;
      const durable = { record: vi.fn(() => new Promise<void>((r) => (release = r))) };
      const echo = spyTool("tool.echo");
      const params = { text: "seen by the policy" };
      const pending = gate(examples, { sink: durable }).call({ kind: "tool.echo", params }, echo, "http");
      await new Promise((r) => setImmediate(r));
      expect(echo.spy).not.toHaveBeenCalled(); // the tool waits for the durable record
      params.text = "swapped after the decision";
      release();
      expect(await pending).toMatchObject({ decision: "allow", ok: true, output: { text: "seen by the policy" } });
      expect(echo.spy.mock.calls[0]?.[0]).toEqual({ text: "seen by the policy" });
    });

    it("denies an allowed call whose durable record fails (no record, no action), and never runs the tool", async () => {
      const failing = { record: vi.fn(() => Promise.reject(new Error("WAL_DISK_FULL"))) };
      const g = gate(examples, { sink: failing });
      const echo = spyTool("tool.echo");
      const r = await g.call({ kind: "tool.echo", params: { text: "x" } }, echo, "http");
      expect(r).toMatchObject({ decision: "deny", reason: expect.stringContaining("could not be recorded durably") as string });
      expect(echo.spy).not.toHaveBeenCalled();
      expect(g.sinkFailures).toBe(1);
    });

    it("reports TOOL_UNKNOWN when no such tool exists", async () => {
      const r = await gate(examples).call({ kind: "tool.echo", params: {} }, undefined, "http");
      expect(r).toMatchObject({ decision: "allow", ok: false, error: { code: "TOOL_UNKNOWN" } });
    });

    it("turns a throwing tool into ok:false TOOL_FAILED", async () => {
      const boom = spyTool("tool.echo", () => Promise.reject(new Error("disk on fire")));
      const r = await gate(examples).call({ kind: "tool.echo", params: {} }, boom, "http");
      expect(r).toMatchObject({ decision: "allow", ok: false, error: { code: "TOOL_FAILED", message: "disk on fire" } });
    });

    it("keeps a RuntimeError's code", async () => {
      const refusing = spyTool("tool.echo", () => Promise.reject(new RuntimeError("TOOL_PARAMS_INVALID", "text must be a string")));
      const r = await gate(examples).call({ kind: "tool.echo", params: { text: 1 } }, refusing, "http");
      expect(r).toMatchObject({ ok: false, error: { code: "TOOL_PARAMS_INVALID", message: "text must be a string" } });
    });

    it("offers node facts to the policy as context.node", async () => {
      const p = loaded(compileCedar([{ name: "n.cedar", text: 'permit(principal, action, resource) when { context.node.site == "factory-7" };' }]));
      expect((await gate(() => p, { node: { site: "factory-7" } }).call({ kind: "tool.echo", params: {} }, spyTool("tool.echo"), "direct")).decision).toBe("allow");
      expect((await gate(() => p, { node: { site: "ship-1" } }).call({ kind: "tool.echo", params: {} }, spyTool("tool.echo"), "direct")).decision).toBe("deny");
    });
  });

  describe("when recording decisions", () => {
    it("records one event per call with the decision's latency", async () => {
      const sink = new MemorySink();
      const g = gate(examples, { sink });
      await g.call({ kind: "tool.echo", params: { text: "a" } }, spyTool("tool.echo"), "http");
      await g.call({ kind: "tool.shell", params: {} }, spyTool("tool.shell"), "mcp");
      await g.call({ kind: "tool.echo", params: {} }, undefined, "direct");
      const events = sink.events();
      expect(events).toHaveLength(3);
      expect(events[0]).toEqual({
        type: "ai.policy.decision",
        timestamp: "2025-06-01T12:00:00.000Z",
        tool: "tool.echo",
        decision: "allow",
        policy_ref: "demo@1.0.0 (sha256:00)",
        policies: ["echo_allow"],
        reason: "permitted by echo_allow",
        errors: [],
        latency_us: events[0]?.latency_us,
        transport: "http",
        agent_id: "agent-1",
      });
      expect(events[1]).toMatchObject({ tool: "tool.shell", decision: "deny", policies: ["shell_deny"], reason: "forbidden by shell_deny", transport: "mcp" });
      expect(events[2]).toMatchObject({ decision: "allow", transport: "direct" });
      for (const e of events) {
        expect(e.latency_us).toBeGreaterThan(0);
        expect(Number.isFinite(e.latency_us)).toBe(true);
      }
    });

    it("measures the decision alone, not the tool run", async () => {
      const sink = new MemorySink();
      const slow = spyTool("tool.echo", () => new Promise((resolve) => setTimeout(() => resolve({ output: 1 }), 50)));
      await gate(examples, { sink }).call({ kind: "tool.echo", params: {} }, slow, "http");
      expect(sink.events()[0]?.latency_us).toBeLessThan(50_000);
    });

    it("keeps the decision and the call working when the sink throws", async () => {
      const throwing = { record: vi.fn(() => { throw new Error("sink down"); }) };
      const g = gate(examples, { sink: throwing });
      const echo = spyTool("tool.echo");
      const allowed = await g.call({ kind: "tool.echo", params: { text: "x" } }, echo, "http");
      expect(allowed).toMatchObject({ decision: "allow", ok: true });
      const shell = spyTool("tool.shell");
      expect((await g.call({ kind: "tool.shell", params: {} }, shell, "http")).decision).toBe("deny");
      expect(shell.spy).not.toHaveBeenCalled();
      expect(throwing.record).toHaveBeenCalledTimes(2);
      expect(g.sinkFailures).toBe(2);
    });

    it("keeps working when the clock throws", async () => {
      const sink = new MemorySink();
      const g = new Interceptor({ policy: examples, principal: { type: "Agent", id: "a" }, node: {}, sink, clock: { now: () => { throw new Error("no clock"); } } });
      expect((await g.call({ kind: "tool.shell", params: {} }, spyTool("tool.shell"), "http")).decision).toBe("deny");
      expect(g.sinkFailures).toBe(1);
    });
  });

  describe("decide()", () => {
    it("decides without running or recording anything", () => {
      const sink = new MemorySink();
      const g = gate(examples, { sink });
      expect(g.decide({ kind: "tool.echo", params: {} })).toMatchObject({ decision: "allow", policies: ["echo_allow"], errors: [] });
      expect(g.decide({ kind: "tool.shell", params: {} })).toMatchObject({ decision: "deny", reason: "forbidden by shell_deny" });
      expect(sink.total).toBe(0);
    });
  });
});

describe("MemorySink", () => {
  const event = (tool: string): DecisionEvent => ({ type: "ai.policy.decision", timestamp: "t", tool, decision: "deny", policy_ref: "none", policies: [], reason: "", errors: [], latency_us: 1, transport: "direct", agent_id: "a" });

  it("keeps the newest events up to its capacity, oldest first", () => {
    const sink = new MemorySink(3);
    for (const t of ["a", "b", "c", "d", "e"]) sink.record(event(t));
    expect(sink.events().map((e) => e.tool)).toEqual(["c", "d", "e"]);
    expect(sink.total).toBe(5);
    sink.clear();
    expect(sink.events()).toEqual([]);
  });

  it("refuses a capacity that is not a positive integer", () => {
    expect(() => new MemorySink(0)).toThrow(RangeError);
  });
});

describe("JsonlSink", () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  });

  it("appends one JSON line per event", async () => {
    dir = mkdtempSync(join(tmpdir(), "jsonl-sink-"));
    const path = join(dir, "decisions.jsonl");
    const sink = new JsonlSink(path);
    const g = gate(examples, { sink });
    await g.call({ kind: "tool.echo", params: { text: "é\n" } }, spyTool("tool.echo"), "http");
    await g.call({ kind: "tool.shell", params: {} }, spyTool("tool.shell"), "http");
    sink.close();
    const lines = readFileSync(path, "utf8").split("\n");
    expect(lines.at(-1)).toBe("");
    const events = lines.slice(0, -1).map((l) => JSON.parse(l) as DecisionEvent);
    expect(events.map((e) => [e.tool, e.decision])).toEqual([["tool.echo", "allow"], ["tool.shell", "deny"]]);
    // After close, records fail; the interceptor counts them and keeps deciding.
    expect((await g.call({ kind: "tool.shell", params: {} }, spyTool("tool.shell"), "http")).decision).toBe("deny");
    expect(g.sinkFailures).toBe(1);
  });
});
