import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { compileCedar } from "../policy/index.js";
import type { LoadedPolicy } from "../policy/index.js";
import { Wal, readCommitted } from "../telemetry/index.js";
import { EXAMPLE_POLICY_FILES, fakeLoadedPolicy } from "../../test/helpers/policies.js";
import { Interceptor } from "./interceptor.js";
import type { Tool } from "./types.js";
import { WalDecisionSink } from "./wal-sink.js";

const quiet = { warn: () => undefined, error: () => undefined };
const echo: Tool = { name: "tool.echo", description: "echo", inputSchema: { type: "object" }, run: (p) => Promise.resolve({ output: p }) };
let dir = "";
let policy: LoadedPolicy;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "wal-sink-"));
  const engine = compileCedar(EXAMPLE_POLICY_FILES);
  policy = fakeLoadedPolicy(engine, { version: "1", ref: "demo@1" });
});
afterEach(async () => {
  policy.engine.dispose();
  await rm(dir, { recursive: true, force: true });
});

const gate = (sink: WalDecisionSink): Interceptor => new Interceptor({ policy: () => policy, principal: { type: "Agent", id: "a" }, node: {}, sink });

describe("WalDecisionSink", () => {
  it("durable (default): when a call is answered, its decision event is already committed in the WAL", async () => {
    const wal = await Wal.open(dir, { log: quiet });
    const g = gate(new WalDecisionSink(wal));
    for (let k = 1; k <= 5; k++) {
      const kind = k % 2 === 0 ? "tool.shell" : "tool.echo";
      await g.call({ kind, params: { k } }, echo, "direct");
      // Read-only, from disk, no flush: the k-th answer implies the k-th event is durable.
      const { entries } = await readCommitted(dir);
      expect(entries.map((e) => e.event.tool)).toHaveLength(k);
      expect(entries[k - 1]?.event).toMatchObject({ type: "ai.policy.decision", tool: kind, decision: kind === "tool.echo" ? "allow" : "deny" });
    }
    await wal.close();
  });

  it("durable: an allow is refused once the WAL cannot record it, and the failure is counted", async () => {
    const wal = await Wal.open(dir, { log: quiet });
    const sink = new WalDecisionSink(wal);
    await wal.close(); // appends now fail with WAL_CLOSED
    const r = await gate(sink).call({ kind: "tool.echo", params: { text: "x" } }, echo, "direct");
    expect(r.decision).toBe("deny");
    expect(sink.failures).toBe(1);
  });

  it("async: the call does not wait for the disk, and flush() makes every event durable", async () => {
    const wal = await Wal.open(dir, { log: quiet });
    const sink = new WalDecisionSink(wal, "async");
    const g = gate(sink);
    await Promise.all(Array.from({ length: 20 }, (_, k) => g.call({ kind: "tool.echo", params: { k } }, echo, "direct")));
    await sink.flush();
    expect((await readCommitted(dir)).entries).toHaveLength(20);
    await wal.close();
  });

  it("toolResults: every allowed call also leaves one ai.tool.result (ok, or the error code; never the output), a denied call none", async () => {
    const wal = await Wal.open(dir, { log: quiet });
    const sink = new WalDecisionSink(wal, "durable", { toolResults: true });
    const g = gate(sink);
    const failing: Tool = { ...echo, run: () => Promise.reject(new Error("boom")) };
    await g.call({ kind: "tool.echo", params: { secret: "s3cr3t" } }, echo, "direct");
    await g.call({ kind: "tool.echo", params: { k: 2 } }, failing, "http");
    await g.call({ kind: "tool.shell", params: { command: "id" } }, echo, "direct");
    await sink.flush();
    const results = (await readCommitted(dir)).entries.map((e) => e.event).filter((e) => e.type === "ai.tool.result");
    expect(results.map((e) => [e.tool, e.ok, e.error_code ?? null, e.transport, e.policy_ref])).toEqual([["tool.echo", true, null, "direct", "demo@1"], ["tool.echo", false, "TOOL_FAILED", "http", "demo@1"]]);
    expect(JSON.stringify(results)).not.toContain("s3cr3t");
    await wal.close();
  });
});
