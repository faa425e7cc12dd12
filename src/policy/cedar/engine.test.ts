import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import { afterEach, describe, expect, it } from "vitest";
import { caught } from "../../../test/helpers/caught.js";
import { CEDAR_CONTEXT_LIMITS, cedarVersion, compileCedar, createCedarCompiler, fromCedar, toCedar } from "./index.js";
import { PolicyError } from "../errors.js";
import type { DecisionRequest, PolicyEngine, PolicyFile } from "../types.js";
import { EXAMPLE_POLICY_FILES } from "../../../test/helpers/policies.js";

const EXAMPLES: PolicyFile[] = EXAMPLE_POLICY_FILES;

const engines: PolicyEngine[] = [];
afterEach(() => {
  for (const e of engines.splice(0)) e.dispose();
});

/** Compiles and disposes after the test; cache off so every evaluate reaches Cedar. */
function engineOf(...texts: (string | PolicyFile)[]): PolicyEngine {
  const files = texts.map((t, i) => (typeof t === "string" ? { name: `p${i}.cedar`, text: t } : t));
  const e = createCedarCompiler({ decisionCacheSize: 0 })(files);
  engines.push(e);
  return e;
}

function request(tool: string, params: Record<string, unknown> = {}, node: Record<string, unknown> = { id: "node-1" }): DecisionRequest {
  return { principal: { type: "Agent", id: "agent-1" }, action: `tool:${tool}`, resource: { type: "Tool", id: tool }, context: { params, node } };
}

function compileError(files: PolicyFile[]): PolicyError {
  const e = caught(() => compileCedar(files));
  expect(e).toBeInstanceOf(PolicyError);
  expect((e as PolicyError).code).toBe("POLICY_COMPILE_FAILED");
  return e as PolicyError;
}

const PERMIT_ALL = "permit(principal, action, resource);";

describe("compileCedar", () => {
  describe("when given the example policies", () => {
    it("allows tool.echo by echo_allow", () => {
      expect(engineOf(...EXAMPLES).evaluate(request("tool.echo", { text: "hi" }))).toEqual({ decision: "allow", policies: ["echo_allow"], errors: [] });
    });

    it("denies tool.shell by shell_deny", () => {
      expect(engineOf(...EXAMPLES).evaluate(request("tool.shell", { cmd: "id" }))).toEqual({ decision: "deny", policies: ["shell_deny"], errors: [] });
    });

    it("denies an unknown tool by default, with no policy and no error", () => {
      expect(engineOf(...EXAMPLES).evaluate(request("tool.unknown"))).toEqual({ decision: "deny", policies: [], errors: [] });
    });

    it("counts the policies", () => {
      expect(engineOf(...EXAMPLES).policyCount).toBe(2);
      expect(engineOf(...EXAMPLES).kind).toBe("cedar");
    });
  });

  describe("when permits and forbids overlap", () => {
    it("lets a forbid win over permit-all", () => {
      const e = engineOf(PERMIT_ALL, '@id("no_shell") forbid(principal, action == Action::"tool:tool.shell", resource);');
      expect(e.evaluate(request("tool.shell"))).toEqual({ decision: "deny", policies: ["no_shell"], errors: [] });
      expect(e.evaluate(request("tool.echo"))).toEqual({ decision: "allow", policies: ["p0.cedar#0"], errors: [] });
    });

    it("lets a forbid on a context condition win over permit-all", () => {
      const e = engineOf(PERMIT_ALL, '@id("no_root") forbid(principal, action, resource) when { context.params has user && context.params.user == "root" };');
      expect(e.evaluate(request("tool.echo", { user: "root" })).decision).toBe("deny");
      expect(e.evaluate(request("tool.echo", { user: "bob" })).decision).toBe("allow");
      expect(e.evaluate(request("tool.echo", {})).decision).toBe("allow");
    });
  });

  describe("when policies are sliced by action", () => {
    it("applies an `action in [...]` forbid to every action it lists", () => {
      const e = engineOf(PERMIT_ALL, '@id("ab") forbid(principal, action in [Action::"tool:a", Action::"tool:b"], resource);');
      expect(e.evaluate(request("a")).policies).toEqual(["ab"]);
      expect(e.evaluate(request("b")).policies).toEqual(["ab"]);
      expect(e.evaluate(request("c"))).toEqual({ decision: "allow", policies: ["p0.cedar#0"], errors: [] });
    });

    it("never matches a scope naming another namespace's Action", () => {
      const e = engineOf('permit(principal, action == NS::Action::"tool:a", resource);');
      expect(e.evaluate(request("a"))).toEqual({ decision: "deny", policies: [], errors: [] });
    });
  });

  describe("when a policy errors during evaluation", () => {
    const erroringForbid = '@id("broken_forbid") forbid(principal, action, resource) when { context.params.missing.x == 1 };';

    it("denies where Cedar alone would skip the erroring forbid and allow (Cedar-skips-errors case)", () => {
      // Cedar by itself: Allow from permit-all, with the forbid's error in diagnostics. We must deny.
      const raw = cedar.isAuthorized({
        principal: { type: "Agent", id: "a" },
        action: { type: "Action", id: "tool:tool.echo" },
        resource: { type: "Tool", id: "tool.echo" },
        context: { params: {} },
        policies: { staticPolicies: `${PERMIT_ALL}\n${erroringForbid}` },
        entities: [],
      });
      expect(raw.type === "success" && raw.response.decision).toBe("allow");

      const d = engineOf(PERMIT_ALL, erroringForbid).evaluate(request("tool.echo", {}));
      expect(d.decision).toBe("deny");
      expect(d.policies).toEqual(["broken_forbid"]);
      expect(d.errors).toHaveLength(1);
      expect(d.errors[0]).toMatch(/^broken_forbid: .*missing/);
    });

    it("denies when an erroring permit sits beside a matching permit", () => {
      const e = engineOf(PERMIT_ALL, '@id("broken_permit") permit(principal, action, resource) when { context.params.n > 1 };');
      const d = e.evaluate(request("tool.echo", { n: "not a number" }));
      expect(d.decision).toBe("deny");
      expect(d.errors[0]).toMatch(/^broken_permit: /);
    });

    it("allows once the forbid can evaluate and does not match", () => {
      expect(engineOf(PERMIT_ALL, erroringForbid).evaluate(request("tool.echo", { missing: { x: 2 } })).decision).toBe("allow");
      expect(engineOf(PERMIT_ALL, erroringForbid).evaluate(request("tool.echo", { missing: { x: 1 } })).decision).toBe("deny");
    });
  });

  describe("when the context carries Cedar's JSON escapes", () => {
    // Cedar would read {"__entity": {...}} as an entity reference, letting a caller forge `Agent::"admin"`.
    const forgeable = (): PolicyEngine => engineOf(PERMIT_ALL, '@id("admins_only") forbid(principal, action, resource) unless { context.params has owner && context.params.owner == Agent::"admin" };');

    it("would be allowed by Cedar alone with a forged entity (why we refuse escapes)", () => {
      const raw = cedar.isAuthorized({
        principal: { type: "Agent", id: "a" },
        action: { type: "Action", id: "tool:tool.echo" },
        resource: { type: "Tool", id: "tool.echo" },
        context: { params: { owner: { __entity: { type: "Agent", id: "admin" } } } },
        policies: { staticPolicies: `${PERMIT_ALL}\nforbid(principal, action, resource) unless { context.params has owner && context.params.owner == Agent::"admin" };` },
        entities: [],
      });
      expect(raw.type === "success" && raw.response.decision).toBe("allow");
      expect(forgeable().evaluate(request("tool.echo", { owner: "admin" })).decision).toBe("deny");
    });

    it.each(["__entity", "__extn", "__expr"])("denies %s anywhere in the context without evaluating", (key) => {
      const engine = forgeable();
      const deep = { a: [{ b: { [key]: { type: "Agent", id: "admin" } } }] };
      for (const params of [{ owner: { [key]: { type: "Agent", id: "admin" } } }, deep]) {
        const d = engine.evaluate(request("tool.echo", params));
        expect(d.decision).toBe("deny");
        expect(d.policies).toEqual([]);
        expect(d.errors[0]).toMatch(new RegExp(`POLICY_REQUEST_INVALID: .*"${key}"`));
      }
      expect(engine.evaluate(request("tool.echo", {}, { [key]: { type: "Agent", id: "admin" } })).decision).toBe("deny");
    });

    it("keeps __proto__ as an ordinary key", () => {
      const e = engineOf('permit(principal, action, resource) when { context.params has __proto__ && context.params.__proto__ == 1 };');
      expect(e.evaluate(request("tool.echo", JSON.parse('{"__proto__": 1}') as Record<string, unknown>)).decision).toBe("allow");
      expect(e.evaluate(request("tool.echo", {})).decision).toBe("deny");
    });
  });

  describe("when converting the context to Cedar values", () => {
    it("makes numbers with up to 4 decimal places Cedar decimals (exactly the number sent)", () => {
      const e = engineOf('permit(principal, action, resource) when { context.params.ratio == decimal("0.5") && context.params.t.greaterThan(decimal("-2.0")) };');
      expect(e.evaluate(request("tool.echo", { ratio: 0.5, t: -1.2345 })).decision).toBe("allow");
    });

    it("keeps safe integers as Longs and refuses what Cedar cannot hold exactly, naming the path (never coerced)", () => {
      const e = engineOf(PERMIT_ALL);
      expect(e.evaluate(request("tool.echo", { n: Number.MAX_SAFE_INTEGER, m: -Number.MAX_SAFE_INTEGER })).decision).toBe("allow");
      const refused: [Record<string, unknown>, RegExp][] = [
        [{ big: 2 ** 53 }, /context\.params\.big: the integer 9007199254740992 is beyond/],
        [{ huge: 1e300 }, /context\.params\.huge/],
        [{ f: 0.12345 }, /context\.params\.f: the number 0\.12345 has more than 4 decimal places/],
        [{ z: -0 }, /negative zero/],
        [{ a: 7n }, /context\.params\.a: a bigint is not JSON data/],
        [{ gone: null }, /context\.params\.gone: null has no Cedar value/],
        [{ list: [1, null] }, /context\.params\.list\[1\]: null/],
        [{ u: undefined }, /context\.params\.u: a undefined is not JSON data/],
        [{ s: "\ud800" }, /context\.params\.s: the string has an unpaired UTF-16 surrogate/],
      ];
      for (const [params, why] of refused) {
        const d = e.evaluate(request("tool.echo", params));
        expect(d.decision, JSON.stringify(Object.keys(params))).toBe("deny");
        expect(d.errors[0]).toMatch(/^POLICY_REQUEST_INVALID: /);
        expect(d.errors[0]).toMatch(why);
      }
    });

    it("accepts arrays whose elements differ only in type, grouping or key order inside strings", () => {
      const e = engineOf(PERMIT_ALL);
      for (const list of [[1, "1"], [true, "true"], [["a,b"], ["a", "b"]], [{ a: "1" }, { a: 1 }], ['"a"', "a"], [1.5, "1.5"]]) {
        expect(e.evaluate(request("tool.echo", { list })).decision, JSON.stringify(list)).toBe("allow");
      }
    });

    it("makes objects records and arrays records of length, elements by index and items (a set for membership)", () => {
      const e = engineOf('permit(principal, action, resource) when { context.params.tags.items.contains("x") && context.params.opts.deep.flag };');
      expect(e.evaluate(request("tool.echo", { tags: ["y", "x"], opts: { deep: { flag: true } } })).decision).toBe("allow");
      expect(e.evaluate(request("tool.echo", { tags: ["y"], opts: { deep: { flag: true } } })).decision).toBe("deny");
    });

    it("attack 7: array order is visible to the policy: a permit for argv [cp, notes.txt, /etc/motd] does not allow [cp, /etc/motd, notes.txt]", () => {
      const ordered = 'context.params.argv.length == 3 && context.params.argv["0"] == "cp" && context.params.argv["1"] == "notes.txt" && context.params.argv["2"] == "/etc/motd"';
      const literal = 'context.params.argv == {"__array": true, "length": 3, "0": "cp", "1": "notes.txt", "2": "/etc/motd", "items": ["cp", "notes.txt", "/etc/motd"]}';
      for (const cond of [ordered, literal]) {
        const e = engineOf(`permit(principal, action, resource) when { ${cond} };`);
        expect(e.evaluate(request("fs.run", { argv: ["cp", "notes.txt", "/etc/motd"] })).decision, cond).toBe("allow");
        expect(e.evaluate(request("fs.run", { argv: ["cp", "/etc/motd", "notes.txt"] })).decision, cond).toBe("deny");
      }
      // Set equality (the old reading) no longer matches an array at all: a policy written for sets fails closed.
      const asSet = engineOf('permit(principal, action, resource) when { context.params.argv == ["cp", "notes.txt", "/etc/motd"] };');
      expect(asSet.evaluate(request("fs.run", { argv: ["cp", "notes.txt", "/etc/motd"] })).decision).toBe("deny");
    });

    it("accepts duplicate array elements and shows them (length, indices); items holds each once", () => {
      const e = engineOf('@id("two") permit(principal, action, resource) when { context.params.list.length == 2 && context.params.list["0"] == context.params.list["1"] && context.params.list.items == [1] };');
      expect(e.evaluate(request("tool.echo", { list: [1, 1] })).decision).toBe("allow");
      expect(e.evaluate(request("tool.echo", { list: [1] })).decision).toBe("deny");
      expect(e.evaluate(request("tool.echo", { sets: [[1, 2], [2, 1]], recs: [{ a: 1 }, { a: 1 }] })).decision).toBe("deny");
      expect(engineOf(PERMIT_ALL).evaluate(request("tool.echo", { sets: [[1, 2], [2, 1]], recs: [{ a: 1 }, { a: 1 }] })).decision).toBe("allow");
    });

    it("cannot be fooled by an object shaped like an array's record: its items is a record, not a set", () => {
      const e = engineOf('permit(principal, action, resource) when { context.params.argv == {"__array": true, "length": 1, "0": "ls", "items": ["ls"]} };');
      expect(e.evaluate(request("fs.run", { argv: ["ls"] })).decision).toBe("allow");
      expect(e.evaluate(request("fs.run", { argv: { length: 1, "0": "ls", items: ["ls"] } })).decision).toBe("deny");
    });

    it("attack input mismatch: an object {length: 1, \"0\": \"ls\"} does not read as the array [\"ls\"]; the __array marker tells them apart and cannot be sent", () => {
      const e = engineOf('permit(principal, action, resource) when { context.params.argv has __array && context.params.argv.length == 1 && context.params.argv["0"] == "ls" };');
      expect(e.evaluate(request("fs.run", { argv: ["ls"] })).decision).toBe("allow");
      expect(e.evaluate(request("fs.run", { argv: { length: 1, "0": "ls" } })).decision).toBe("deny");
      const forged = e.evaluate(request("fs.run", { argv: { __array: true, length: 1, "0": "ls", items: ["ls"] } }));
      expect(forged.decision).toBe("deny");
      expect(forged.errors[0]).toMatch(/__array/);
      expect(toCedar(["ls"])).toMatchObject({ __array: true, length: 1, "0": "ls" });
      expect(fromCedar(toCedar({ length: 1, "0": "ls" }))).toEqual({ length: 1, "0": "ls" });
      expect(fromCedar(toCedar(["ls"]))).toEqual(["ls"]);
    });

    it("denies values that are not data", () => {
      const e = engineOf(PERMIT_ALL);
      for (const bad of [() => 1, Symbol("s"), new Date(0), new Map(), new (class X {})()]) {
        const d = e.evaluate(request("tool.echo", { bad }));
        expect(d.decision).toBe("deny");
        expect(d.errors[0]).toMatch(/POLICY_REQUEST_INVALID/);
      }
    });

    it(`denies a context nested deeper than ${CEDAR_CONTEXT_LIMITS.maxDepth}`, () => {
      const nest = (n: number): Record<string, unknown> => (n === 0 ? {} : { a: nest(n - 1) });
      const e = engineOf(PERMIT_ALL);
      // context (0) → params (1) → 31 more levels: the deepest value sits at depth 32.
      expect(e.evaluate(request("tool.echo", nest(31))).decision).toBe("allow");
      const d = e.evaluate(request("tool.echo", nest(32)));
      expect(d.decision).toBe("deny");
      expect(d.errors[0]).toMatch(/deeper than 32/);
    });

    it(`denies a context with more than ${CEDAR_CONTEXT_LIMITS.maxNodes} values`, () => {
      const e = engineOf(PERMIT_ALL);
      const d = e.evaluate(request("tool.echo", { list: Array.from({ length: CEDAR_CONTEXT_LIMITS.maxNodes }, (_, i) => i) }));
      expect(d.decision).toBe("deny");
      expect(d.errors[0]).toMatch(/more than 10000 values/);
      // Cedar holds an array's elements twice (index and items): nested arrays cannot multiply that unbounded.
      let nested: unknown = 1;
      for (let i = 0; i < 14; i++) nested = [nested];
      expect(e.evaluate(request("tool.echo", { nested })).errors[0]).toMatch(/more than 10000 values/);
    });

    it("denies a cyclic context instead of looping", () => {
      const params: Record<string, unknown> = {};
      params["self"] = params;
      expect(engineOf(PERMIT_ALL).evaluate(request("tool.echo", params)).decision).toBe("deny");
    });

    it("keeps Cedar's type error when a value the policies navigate into is not a record", () => {
      const e = engineOf(PERMIT_ALL, '@id("dbg") forbid(principal, action, resource) when { context.params has opts.debug };');
      expect(e.evaluate(request("t", { opts: {} })).decision).toBe("allow");
      expect(e.evaluate(request("t", { opts: { debug: false } })).decision).toBe("deny");
      const d = e.evaluate(request("t", { opts: "debug" }));
      expect(d.decision).toBe("deny");
      expect(d.errors[0]).toMatch(/^dbg: .*type error/);
    });

    it("sends Cedar only what the policies read, with the same answer", () => {
      // The forbid reads params.cmd; everything else (a large, unread payload) stays out of WASM.
      const e = engineOf(PERMIT_ALL, '@id("no_rm") forbid(principal, action, resource) when { context.params has cmd && context.params.cmd like "rm *" };');
      const payload = Array.from({ length: 1500 }, (_, i) => ({ k: `v${i}`, f: i + 0.5 })); // 1500 × 3 values, each counted twice (index and items)
      expect(e.evaluate(request("tool.shell", { cmd: "rm -rf /", payload })).decision).toBe("deny");
      expect(e.evaluate(request("tool.shell", { cmd: "ls", payload })).decision).toBe("allow");
      // A read path that is not a record is sent whole, so Cedar's type error (→ deny) is kept.
      expect(e.evaluate(request("tool.shell", { cmd: ["rm", "-rf"] })).decision).toBe("deny");
    });
  });

  describe("when policy text is wrong", () => {
    it("names the file, line and column of a parse error", () => {
      const e = compileError([
        { name: "good.cedar", text: PERMIT_ALL },
        { name: "bad.cedar", text: '// a comment with é\n@id("x")\nforbid(principal, action == , resource);\n' },
      ]);
      expect(e.message).toMatch(/^bad\.cedar:3:29: /);
      expect(e.details).toMatchObject({ file: "bad.cedar", line: 3, column: 29 });
    });

    it("rejects a duplicate @id across files", () => {
      const e = compileError([
        { name: "a.cedar", text: `@id("same") ${PERMIT_ALL}` },
        { name: "b.cedar", text: '@id("same") forbid(principal, action, resource);' },
      ]);
      expect(e.message).toMatch(/duplicate policy id "same" in b\.cedar \(already used in a\.cedar\)/);
    });

    it("rejects an @id that collides with a generated <file>#<index> id", () => {
      compileError([{ name: "a.cedar", text: `${PERMIT_ALL}\n@id("a.cedar#0") forbid(principal, action, resource);` }]);
    });

    it("rejects templates, naming the line", () => {
      const e = compileError([{ name: "t.cedar", text: `${PERMIT_ALL}\npermit(principal == ?principal, action, resource);` }]);
      expect(e.message).toMatch(/^t\.cedar:2:\d+: .*template/);
    });
  });

  describe("when reporting policy ids", () => {
    it("uses @id when present, else <file>#<index> counted per file", () => {
      const e = engineOf(
        { name: "a.cedar", text: `// first; not the end of a statement "\nforbid(principal, action == Action::"tool:x", resource) when { context.params has "a;b" };\n${PERMIT_ALL}\n@id("named") permit(principal, action == Action::"tool:y", resource);` },
        { name: "b.cedar", text: 'permit(principal, action == Action::"tool:z", resource) when { "//;" == "//;" };' },
      );
      expect(e.policyCount).toBe(4);
      expect(e.evaluate(request("x", { "a;b": 1 })).policies).toEqual(["a.cedar#0"]);
      expect(e.evaluate(request("y")).policies.sort()).toEqual(["a.cedar#1", "named"]);
      expect(e.evaluate(request("z")).policies.sort()).toEqual(["a.cedar#1", "b.cedar#0"]);
    });
  });

  describe("when the engine is disposed or misused", () => {
    it("denies after dispose, and dispose is safe twice", () => {
      const e = compileCedar(EXAMPLES);
      e.dispose();
      e.dispose();
      const d = e.evaluate(request("tool.echo"));
      expect(d.decision).toBe("deny");
      expect(d.errors[0]).toMatch(/disposed/);
    });

    it("does not let a disposed engine's reused set answer for another", () => {
      const a = compileCedar([{ name: "a.cedar", text: PERMIT_ALL }]);
      a.dispose();
      const b = engineOf('forbid(principal, action, resource);');
      expect(b.evaluate(request("tool.echo")).decision).toBe("deny");
      expect(a.evaluate(request("tool.echo")).decision).toBe("deny");
    });

    it("denies a malformed request instead of throwing", () => {
      const e = engineOf(PERMIT_ALL);
      const bad = [
        { ...request("tool.echo"), principal: { type: "Not A Type", id: "x" } },
        { ...request("tool.echo"), principal: null },
        { ...request("tool.echo"), context: null },
        { ...request("tool.echo"), context: [] },
        { ...request("tool.echo"), action: 7 },
      ] as unknown as DecisionRequest[];
      for (const r of bad) {
        const d = e.evaluate(r);
        expect(d.decision).toBe("deny");
        expect(d.errors.length).toBeGreaterThan(0);
      }
    });

    it("denies when a getter in the context throws", () => {
      const params = Object.defineProperty({}, "boom", { enumerable: true, get: () => { throw new Error("getter"); } });
      const d = engineOf(PERMIT_ALL).evaluate(request("tool.echo", params));
      expect(d).toMatchObject({ decision: "deny", errors: [expect.stringMatching(/getter/)] });
    });
  });

  describe("when decisions are cached", () => {
    it("answers a repeated request the same, and copies so callers cannot poison it", () => {
      const e = compileCedar(EXAMPLES);
      engines.push(e);
      const first = e.evaluate(request("tool.shell"));
      first.policies.push("tampered");
      (first as { decision: string }).decision = "allow";
      expect(e.evaluate(request("tool.shell"))).toEqual({ decision: "deny", policies: ["shell_deny"], errors: [] });
    });

    it("keys on what the policies read, so a changed read value is re-evaluated", () => {
      const e = compileCedar([{ name: "a.cedar", text: `${PERMIT_ALL}\nforbid(principal, action, resource) when { context.params.n == 1 };` }]);
      engines.push(e);
      expect(e.evaluate(request("t", { n: 2 })).decision).toBe("allow");
      expect(e.evaluate(request("t", { n: 1 })).decision).toBe("deny");
      expect(e.evaluate(request("t", { n: 2 })).decision).toBe("allow");
      expect(e.evaluate({ ...request("t", { n: 2 }), principal: { type: "Agent", id: "other" } }).decision).toBe("allow");
    });
  });

  it("reports the Cedar version", () => {
    expect(cedarVersion()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
