import { describe, expect, it } from "vitest";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { createLogger, REDACTED } from "./logger.js";

/** A destination that keeps every line (pino writes one JSON object per write). */
function sink(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  return { stream, lines: () => chunks.join("").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("createLogger", () => {
  it("writes JSON lines with name, level, time and message, without pid or hostname", () => {
    const s = sink();
    createLogger({ name: "autonomy.test", destination: s.stream }).info({ seq: 7 }, "APPENDED");
    const [line] = s.lines();
    expect(line).toMatchObject({ level: 30, name: "autonomy.test", seq: 7, msg: "APPENDED" });
    expect(typeof line?.time).toBe("number");
    expect(line).not.toHaveProperty("pid");
    expect(line).not.toHaveProperty("hostname");
  });

  it("honours the level", () => {
    const s = sink();
    const log = createLogger({ name: "t", level: "warn", destination: s.stream });
    log.info("dropped");
    log.warn("kept");
    expect(s.lines().map((l) => l.msg)).toEqual(["kept"]);
  });

  it("redacts authorization headers, tokens, passwords and keys, and keeps everything else", () => {
    const s = sink();
    createLogger({ name: "t", destination: s.stream }).warn({
      password: "hunter2",
      token: "tok-1",
      registry: { url: "https://r.example", password: "pw-2", api_key: "ak-3" },
      req: { method: "POST", headers: { authorization: "Bearer abc.def", cookie: "sid=4", "x-request-id": "r-1" } },
      headers: { "proxy-authorization": "Basic 5" },
      signer: { private_key: "-----BEGIN PRIVATE KEY-----6", key_id: "k-1" },
    }, "RECEIVER_REFUSED");
    const text = JSON.stringify(s.lines());
    for (const secret of ["hunter2", "tok-1", "pw-2", "ak-3", "abc.def", "sid=4", "Basic 5", "PRIVATE KEY"]) expect(text, secret).not.toContain(secret);
    const [line] = s.lines();
    expect(line).toMatchObject({
      password: REDACTED,
      token: REDACTED,
      registry: { url: "https://r.example", password: REDACTED, api_key: REDACTED },
      req: { method: "POST", headers: { authorization: REDACTED, cookie: REDACTED, "x-request-id": "r-1" } },
      headers: { "proxy-authorization": REDACTED },
      signer: { private_key: REDACTED, key_id: "k-1" },
    });
  });
});

describe("one logger factory", () => {
  it("no file of src/ outside src/observability creates a pino logger itself", async () => {
    const src = fileURLToPath(new URL("..", import.meta.url));
    const files = (await readdir(src, { recursive: true })).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && !f.startsWith("observability"));
    const offenders: string[] = [];
    for (const f of files) if (/from "pino"/.test(await readFile(join(src, f), "utf8"))) offenders.push(f);
    expect(offenders).toEqual([]);
  });
});
