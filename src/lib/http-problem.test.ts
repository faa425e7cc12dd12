import { describe, expect, it } from "vitest";
import Fastify from "fastify";
import type { FastifyInstance } from "fastify";
import { AutonomyError, ExitCodes, UsageError } from "./errors.js";
import { PROBLEM_CONTENT_TYPE, problem, problemDetails, problemFromError } from "./http-problem.js";

class DemoError extends AutonomyError<"DEMO_REFUSED" | "DEMO_BROKEN" | "DEMO_TAMPERED"> {}

async function appWith(routes: (app: FastifyInstance) => void, statusOf?: (e: AutonomyError) => number | undefined): Promise<FastifyInstance> {
  const app = Fastify({ bodyLimit: 64 });
  await app.register(problemDetails, { bodyLimit: 64, ...(statusOf ? { statusOf } : {}) });
  routes(app);
  return app;
}

const body = (r: { body: string }): Record<string, unknown> => JSON.parse(r.body) as Record<string, unknown>;

describe("problemDetails plugin", () => {
  it("answers an unknown route with a 404 problem carrying NOT_FOUND", async () => {
    const app = await appWith(() => undefined);
    const r = await app.inject({ method: "GET", url: "/nope?x=1" });
    expect(r.statusCode).toBe(404);
    expect(r.headers["content-type"]).toMatch(/^application\/problem\+json/);
    expect(body(r)).toEqual({ type: "urn:autonomyops:error:NOT_FOUND", title: "Not found", status: 404, detail: "no route GET /nope", code: "NOT_FOUND" });
  });

  it("maps a usage error to 400 with its code, message and hint", async () => {
    const app = await appWith((a) => a.get("/u", () => { throw new UsageError("limit must be a number", "pass ?limit=10"); }));
    const r = await app.inject({ method: "GET", url: "/u" });
    expect(r.statusCode).toBe(400);
    expect(body(r)).toEqual({ type: "urn:autonomyops:error:USAGE", title: "UsageError", status: 400, detail: "limit must be a number", code: "USAGE", hint: "pass ?limit=10" });
  });

  it("maps a verification failure to 422 and lets the server choose a status per code", async () => {
    const app = await appWith((a) => {
      a.get("/v", () => { throw new DemoError("DEMO_TAMPERED", "digest differs", { hint: "re-sign", exitCode: ExitCodes.verification }); });
      a.get("/c", () => { throw new DemoError("DEMO_REFUSED", "sequence already used", { hint: "use a higher one" }); });
    }, (e) => (e.code === "DEMO_REFUSED" ? 409 : undefined));
    expect((await app.inject({ method: "GET", url: "/v" })).statusCode).toBe(422);
    const c = await app.inject({ method: "GET", url: "/c" });
    expect(c.statusCode).toBe(409);
    expect(body(c)).toMatchObject({ code: "DEMO_REFUSED", detail: "sequence already used" });
  });

  it("never forwards the message of a 5xx (a domain failure or anything unexpected)", async () => {
    const app = await appWith((a) => {
      a.get("/d", () => { throw new DemoError("DEMO_BROKEN", "cannot open /var/lib/secret/state.json", { hint: "h" }); });
      a.get("/x", () => { throw new Error("password=hunter2 at db.internal"); });
    });
    const d = await app.inject({ method: "GET", url: "/d" });
    expect(d.statusCode).toBe(500);
    expect(body(d)).toMatchObject({ code: "DEMO_BROKEN", status: 500 });
    expect(d.body).not.toContain("secret");
    const x = await app.inject({ method: "GET", url: "/x" });
    expect(body(x)).toMatchObject({ code: "INTERNAL", status: 500, type: "urn:autonomyops:error:INTERNAL" });
    expect(x.body).not.toContain("hunter2");
  });

  it("maps Fastify's request errors: schema, bad JSON, body limit, media type", async () => {
    const app = await appWith((a) => a.post("/p", { schema: { body: { type: "object", required: ["n"], properties: { n: { type: "integer" } } } } }, () => ({ ok: true })));
    const json = { "content-type": "application/json" };
    const cases: [string, Record<string, string>, number, string][] = [
      ["{}", json, 400, "REQUEST_INVALID"],
      ["{bad", json, 400, "REQUEST_INVALID"],
      [JSON.stringify({ n: 1, pad: "x".repeat(100) }), json, 413, "REQUEST_TOO_LARGE"],
      ["n=1", { "content-type": "application/x-www-form-urlencoded" }, 415, "MEDIA_TYPE_UNSUPPORTED"],
    ];
    for (const [payload, headers, status, code] of cases) {
      const r = await app.inject({ method: "POST", url: "/p", payload, headers });
      expect(r.statusCode, payload).toBe(status);
      expect(r.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(body(r), payload).toMatchObject({ status, code, type: `urn:autonomyops:error:${code}` });
    }
    expect((await app.inject({ method: "POST", url: "/p", payload: { n: 1 } })).statusCode).toBe(200);
  });

  it("answers 405 with Allow for a known path asked with another method, 404 for an unknown path", async () => {
    const app = await appWith((a) => a.post("/p", () => ({ ok: true })));
    for (const method of ["GET", "PUT", "DELETE", "TRACE"] as const) {
      const r = await app.inject({ method, url: "/p?x=1" });
      expect(r.statusCode, method).toBe(405);
      expect(r.headers.allow, method).toBe("POST");
      expect(r.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(body(r)).toMatchObject({ status: 405, code: "METHOD_NOT_ALLOWED", detail: `${method} is not allowed on /p; use POST` });
    }
    expect((await app.inject({ method: "GET", url: "/q" })).statusCode).toBe(404);
  });

  it("leaves an API area's own error handler in charge inside that area", async () => {
    const app = await appWith((a) => {
      void a.register((area, _o, done) => {
        area.setErrorHandler((_e, _req, reply) => reply.code(418).send({ mine: true }));
        area.get("/area", () => { throw new Error("x"); });
        done();
      });
      a.get("/root", () => { throw new Error("x"); });
    });
    expect(body(await app.inject({ method: "GET", url: "/area" }))).toEqual({ mine: true });
    expect((await app.inject({ method: "GET", url: "/root" })).headers["content-type"]).toMatch(/^application\/problem\+json/);
  });
});

describe("problemFromError", () => {
  it("is a plain mapping usable without Fastify", () => {
    expect(problemFromError({ statusCode: 404 })).toMatchObject({ status: 404, code: "NOT_FOUND" });
    expect(problemFromError({ statusCode: 405 })).toMatchObject({ status: 405, code: "METHOD_NOT_ALLOWED" });
    // An unknown error's text is never echoed, whatever its statusCode; Fastify's own request errors explain themselves.
    expect(problemFromError({ statusCode: 422, message: "open /etc/autonomy/key: token=s3cret" })).toEqual(problem("REQUEST_INVALID", 400, "malformed request"));
    expect(problemFromError({ statusCode: 400, code: "FST_ERR_VALIDATION", message: "body must have required property 'kind'" })).toMatchObject({ detail: "malformed request: body must have required property 'kind'" });
    expect(problemFromError("boom")).toMatchObject({ status: 500, code: "INTERNAL" });
    expect(PROBLEM_CONTENT_TYPE).toBe("application/problem+json");
  });
});
