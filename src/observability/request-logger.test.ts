import { describe, expect, it, vi } from "vitest";
import { Writable } from "node:stream";
import Fastify, { LogController } from "fastify";
import type { FastifyBaseLogger } from "fastify";
import { createLogger, REDACTED } from "./index.js";
import { lazyChildLoggerFactory } from "./request-logger.js";

function sink(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString("utf8"));
      cb();
    },
  });
  return { stream, lines: () => chunks.join("").trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>) };
}

async function appWith(log: FastifyBaseLogger) {
  const app = Fastify({ loggerInstance: log, logController: new LogController({ disableRequestLogging: true }), childLoggerFactory: lazyChildLoggerFactory });
  app.get("/quiet", () => ({ ok: true }));
  app.get("/loud", (req) => {
    req.log.info({ authorization: "Bearer secret-token", n: 1 }, "handled");
    req.log.debug("below the level");
    return { ok: true };
  });
  await app.ready();
  return app;
}

describe("lazyChildLoggerFactory", () => {
  it("makes no pino child for a request that does not log (the poll route's per-request cost)", async () => {
    const s = sink();
    const log = createLogger({ name: "t", destination: s.stream });
    const app = await appWith(log);
    const child = vi.spyOn(log, "child"); // after start-up: Fastify makes children of its own then
    for (let i = 0; i < 3; i++) expect((await app.inject({ url: "/quiet" })).statusCode).toBe(200);
    expect(child).not.toHaveBeenCalled();
    await app.close();
  });

  it("a request that logs gets one child: its lines carry the request id, the level holds, secrets are redacted", async () => {
    const s = sink();
    const log = createLogger({ name: "t", destination: s.stream });
    const app = await appWith(log);
    const child = vi.spyOn(log, "child"); // after start-up: Fastify makes children of its own then
    const res = await app.inject({ url: "/loud" });
    expect(res.statusCode).toBe(200);
    expect(child).toHaveBeenCalledTimes(1);
    const lines = s.lines().filter((l) => l.msg === "handled" || l.msg === "below the level");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ reqId: "req-1", n: 1, authorization: REDACTED, level: 30, name: "t" });
    await app.close();
  });
});
