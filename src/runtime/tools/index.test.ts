import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RuntimeError } from "../errors.js";
import { builtinTools, echoTool, HostAllowList, httpGetTool, shellTool, toolRegistry } from "./index.js";
import { isNonPublic } from "./address-guard.js";
import type { HttpGetOutput, ShellOutput } from "./index.js";
import type { ToolCallContext } from "../types.js";

async function rejection(p: Promise<unknown>): Promise<RuntimeError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(RuntimeError);
    return e as RuntimeError;
  }
  throw new Error("expected a rejection");
}

describe("tool.echo", () => {
  it("returns its text", async () => {
    expect(await echoTool().run({ text: "hi" })).toEqual({ output: { text: "hi" } });
  });

  it("rejects bad params with TOOL_PARAMS_INVALID naming each field", async () => {
    const e = await rejection(echoTool().run({ text: 3, extra: true }));
    expect(e.code).toBe("TOOL_PARAMS_INVALID");
    expect(e.message).toContain("text:");
    expect(e.message).toContain("extra: unknown field");
  });

  it("publishes its params as JSON Schema", () => {
    expect(echoTool().inputSchema).toMatchObject({ type: "object", required: ["text"], properties: { text: { type: "string" } }, additionalProperties: false });
  });
});

describe("HostAllowList", () => {
  const list = new HostAllowList(["API.example.com", "*.example.org", "127.0.0.1", "::1"]);
  it.each([
    ["api.example.com", true],
    ["api.example.com.", true],
    ["example.com", false],
    ["a.example.org", true],
    ["a.b.example.org", true],
    ["example.org", false],
    ["evilexample.org", false],
    ["127.0.0.1", true],
    ["[::1]", true],
    ["127.0.0.2", false],
  ])("%s → %s", (host, allowed) => {
    expect(list.allows(host)).toBe(allowed);
  });

  it("rejects entries that are not hosts", () => {
    for (const bad of ["http://x.com", "x.com/path", "a.*.com", "x.com:80", "*"]) {
      expect(() => new HostAllowList([bad]), bad).toThrow(RuntimeError);
    }
  });
});

/** A policy context that allows every follow-up and remembers what it was asked. */
function allowAll(): ToolCallContext & { hops: Record<string, unknown>[] } {
  const hops: Record<string, unknown>[] = [];
  return { hops, redecide: (params) => (hops.push(params), Promise.resolve({ decision: "allow", policy_ref: "p@1", reason: "permitted", policies: ["p"] })) };
}

describe("tool.http_get against a local server", () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://x");
      if (url.pathname === "/hello") return void res.writeHead(200, { "content-type": "text/plain" }).end("hello");
      if (url.pathname === "/big") return void res.writeHead(200).end(Buffer.alloc(2 * 1024 * 1024, 0x61));
      if (url.pathname === "/redirect-ok") return void res.writeHead(302, { location: "/hello" }).end();
      if (url.pathname === "/redirect-away") return void res.writeHead(302, { location: "http://localhost:1/secret" }).end();
      if (url.pathname === "/loop") return void res.writeHead(301, { location: "/loop" }).end();
      if (url.pathname === "/slow") return void setTimeout(() => res.end("late"), 2000);
      res.writeHead(404).end("nope");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const tool = (over: { timeoutMs?: number; maxBodyBytes?: number } = {}) => httpGetTool({ allowedDomains: ["127.0.0.1"], ...over });

  it("fetches an allow-listed URL", async () => {
    const { output } = await tool().run({ endpoint: `${base}/hello` });
    expect(output).toMatchObject({ status: 200, body: "hello", truncated: false, content_type: "text/plain" });
  });

  it("returns non-2xx statuses as output", async () => {
    expect((await tool().run({ endpoint: `${base}/missing` })).output).toMatchObject({ status: 404, body: "nope" });
  });

  it("refuses a host not on the allow-list before connecting", async () => {
    const e = await rejection(tool().run({ endpoint: `http://localhost:${new URL(base).port}/hello` }));
    expect(e.code).toBe("TOOL_TARGET_NOT_ALLOWED");
  });

  it("refuses other schemes and URLs with credentials", async () => {
    expect((await rejection(tool().run({ endpoint: "file:///etc/passwd" }))).code).toBe("TOOL_TARGET_NOT_ALLOWED");
    expect((await rejection(tool().run({ endpoint: `http://u:p@127.0.0.1:1/` }))).code).toBe("TOOL_TARGET_NOT_ALLOWED");
  });

  it("rejects a non-URL endpoint as bad params", async () => {
    expect((await rejection(tool().run({ endpoint: "not a url" }))).code).toBe("TOOL_PARAMS_INVALID");
  });

  it("follows redirects inside the allow-list, asking the policy about every hop and re-checking it", async () => {
    const asked = allowAll();
    expect((await tool().run({ endpoint: `${base}/redirect-ok` }, undefined, asked)).output).toMatchObject({ status: 200, body: "hello", url: `${base}/hello` });
    expect(asked.hops).toEqual([{ endpoint: `${base}/hello` }]);
    expect((await rejection(tool().run({ endpoint: `${base}/redirect-away` }, undefined, allowAll()))).code).toBe("TOOL_TARGET_NOT_ALLOWED");
    expect((await rejection(tool().run({ endpoint: `${base}/loop` }, undefined, allowAll()))).message).toContain("redirects");
  });

  it("stops at a hop the policy denies, saying so", async () => {
    const deny: ToolCallContext = { redecide: () => Promise.resolve({ decision: "deny", policy_ref: "p@1", reason: "forbidden by no_hello", policies: ["no_hello"] }) };
    const e = await rejection(tool().run({ endpoint: `${base}/redirect-ok` }, undefined, deny));
    expect(e.code).toBe("TOOL_REDIRECT_DENIED");
    expect(e.message).toContain("forbidden by no_hello");
  });

  it("does not follow a redirect when no policy decision can be asked for it (no context)", async () => {
    expect((await rejection(tool().run({ endpoint: `${base}/redirect-ok` }))).code).toBe("TOOL_REDIRECT_DENIED");
  });

  describe("address guard (DNS rebinding, internal targets)", () => {
    /** A fake DNS: every name resolves to `address`; counts lookups. */
    const dns = (address: string) => {
      const calls: string[] = [];
      return { calls, resolve: (host: string) => (calls.push(host), Promise.resolve([{ address, family: 4 as const }])) };
    };
    const port = (): string => new URL(base).port;

    it("attack 8: refuses an endpoint not spelled as it would be fetched even without the interceptor, and tells the interceptor so before any decision", async () => {
      const t = httpGetTool({ allowedDomains: ["localhost"], resolve: dns("127.0.0.1").resolve, allowPrivateNetworks: true });
      const e = await rejection(t.run({ endpoint: `http://LOCALHOST:${port()}/hello` }));
      expect(e.code).toBe("INPUT_NOT_REPRESENTABLE");
      expect(e.message).toContain(`http://localhost:${port()}/hello`);
      expect(t.unfaithful?.({ endpoint: `http://LOCALHOST:${port()}/hello` })).toMatchObject({ path: "params.endpoint" });
      expect(t.unfaithful?.({ endpoint: `http://localhost:${port()}/hello` })).toBeUndefined();
      expect(t.unfaithful?.({ endpoint: "not a url" })).toBeUndefined(); // refused by run as not a URL
    });

    it("refuses an allow-listed name that resolves to a non-public address, before any request is sent", async () => {
      const fake = dns("127.0.0.1");
      const t = httpGetTool({ allowedDomains: ["api.example.com"], resolve: fake.resolve });
      const e = await rejection(t.run({ endpoint: `http://api.example.com:${port()}/hello` }));
      expect(e.code).toBe("TOOL_TARGET_NOT_ALLOWED");
      expect(e.message).toContain("non-public address (127.0.0.1)");
    });

    it("with allowPrivateNetworks connects to exactly the address it checked (one lookup per hop, no second resolution to rebind)", async () => {
      const fake = dns("127.0.0.1");
      const t = httpGetTool({ allowedDomains: ["svc.internal"], allowPrivateNetworks: true, resolve: fake.resolve });
      const { output } = await t.run({ endpoint: `http://svc.internal:${port()}/redirect-ok` }, undefined, allowAll());
      expect(output).toMatchObject({ status: 200, body: "hello" });
      expect(fake.calls).toEqual(["svc.internal", "svc.internal"]); // the first hop and the redirect: one lookup each
    });

    it("re-checks the address after a redirect to an allow-listed name", async () => {
      const t = httpGetTool({ allowedDomains: ["127.0.0.1", "localhost"], resolve: dns("127.0.0.1").resolve });
      expect((await rejection(t.run({ endpoint: `${base}/redirect-away` }, undefined, allowAll()))).message).toContain("non-public address");
    });

    it.each([
      ["127.0.0.1", true], ["10.1.2.3", true], ["172.16.5.4", true], ["192.168.1.1", true], ["169.254.169.254", true], ["100.64.0.1", true], ["0.0.0.0", true],
      ["::1", true], ["fe80::1", true], ["fd00::1", true], ["::ffff:127.0.0.1", true], ["::ffff:10.0.0.1", true], ["not-an-ip", true],
      ["::127.0.0.1", true], ["::a00:1", true], ["2002:7f00:1::1", true], ["2002:808:808::1", true], ["fec0::1", true], ["feff::1", true], ["::", true],
      ["93.184.216.34", false], ["8.8.8.8", false], ["2606:4700:4700::1111", false], ["::ffff:8.8.8.8", false], ["2001:4860:4860::8888", false],
    ])("isNonPublic(%s) = %s (attack 8: IPv4-compatible, 6to4 and site-local forms too)", (address, expected) => {
      expect(isNonPublic(address)).toBe(expected);
    });
  });

  it("truncates bodies at the bound", async () => {
    const out = (await tool({ maxBodyBytes: 1000 }).run({ endpoint: `${base}/big` })).output as HttpGetOutput;
    expect(out.truncated).toBe(true);
    expect(out.body).toHaveLength(1000);
    const full = (await tool().run({ endpoint: `${base}/big` })).output as HttpGetOutput;
    expect(full.body).toHaveLength(1024 * 1024);
    expect(full.truncated).toBe(true);
  });

  it("times out with TOOL_FAILED", async () => {
    const e = await rejection(tool({ timeoutMs: 200 }).run({ endpoint: `${base}/slow` }));
    expect(e.code).toBe("TOOL_FAILED");
    expect(e.message).toContain("timed out");
  });
});

/** Resolves once no process has `pid` (a zombie counts as gone: it runs nothing); fails after 2 s. */
async function expectGone(pid: number): Promise<void> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
    } catch {
      return false;
    }
    try {
      return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
    } catch {
      return false;
    }
  };
  for (let i = 0; i < 40 && alive(); i++) await new Promise((r) => setTimeout(r, 50));
  expect(alive(), `process ${pid} is still running after the call returned`).toBe(false);
}

describe("tool.shell", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "aops-shell-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("runs the command and reports exit code and output", async () => {
    const out = (await shellTool({ cwd: dir }).run({ command: "touch made; echo out; echo err >&2; exit 3" })).output as ShellOutput;
    expect(out).toMatchObject({ exit_code: 3, stdout: "out\n", stderr: "err\n", truncated: false, signal: null });
    expect(existsSync(join(dir, "made"))).toBe(true);
  });

  it("does not hand the runtime's environment to the command", async () => {
    process.env.AOPS_TEST_SECRET = "s3cret";
    const out = (await shellTool().run({ command: "echo \"[$AOPS_TEST_SECRET]\"" })).output as ShellOutput;
    delete process.env.AOPS_TEST_SECRET;
    expect(out.stdout).toBe("[]\n");
  });

  it("bounds output", async () => {
    const out = (await shellTool({ maxOutputBytes: 10 }).run({ command: "head -c 100000 /dev/zero | tr '\\0' a" })).output as ShellOutput;
    expect(out.stdout).toBe("a".repeat(10));
    expect(out.truncated).toBe(true);
  });

  it("kills the whole process group on timeout", async () => {
    const started = Date.now();
    const e = await rejection(shellTool({ timeoutMs: 300 }).run({ command: "sleep 30 & sleep 30; echo never" }));
    expect(e.code).toBe("TOOL_FAILED");
    expect(e.message).toContain("timed out");
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it("attack 8: a background child (sleep 60 &) does not outlive the call: its process group is killed when the shell exits", async () => {
    // Detached from stdout, so the shell's exit ends the call at once (the old code returned and left sleep running).
    const out = (await shellTool().run({ command: "sleep 60 >/dev/null 2>&1 & echo $!" })).output as ShellOutput;
    const pid = Number(out.stdout.trim());
    expect(pid).toBeGreaterThan(1);
    await expectGone(pid);
  });

  it("attack 8: a background child holding stdout open is killed when the shell exits, and the call returns at once", async () => {
    const started = Date.now();
    const out = (await shellTool({ timeoutMs: 20_000 }).run({ command: "sleep 60 & echo $!" })).output as ShellOutput;
    expect(out.exit_code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    await expectGone(Number(out.stdout.trim()));
  });

  it("kills the process group when the caller aborts", async () => {
    const ac = new AbortController();
    const pending = shellTool({ cwd: dir, timeoutMs: 20_000 }).run({ command: "sleep 60 >/dev/null 2>&1 & echo $! > bg.pid; sleep 60" }, ac.signal);
    setTimeout(() => ac.abort(), 300);
    expect((await rejection(pending)).message).toContain("cancelled");
    await expectGone(Number(readFileSync(join(dir, "bg.pid"), "utf8").trim()));
  });

  it("rejects an empty command", async () => {
    expect((await rejection(shellTool().run({ command: "" }))).code).toBe("TOOL_PARAMS_INVALID");
  });
});

describe("builtinTools / toolRegistry", () => {
  it("offers the three built-ins by name", () => {
    expect([...builtinTools().keys()]).toEqual(["tool.echo", "tool.http_get", "tool.shell"]);
  });

  it("refuses two tools with one name", () => {
    expect(() => toolRegistry(builtinTools(), [echoTool()])).toThrow(/two tools are named tool.echo/);
  });
});
