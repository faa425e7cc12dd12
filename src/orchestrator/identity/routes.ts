import type { FastifyPluginAsync } from "fastify";
import { CreateEnrollmentTokenRequest, CreateTokenRequest, CreatedEnrollmentToken, CreatedToken, EnrollRequest, Enrolled } from "../../cpapi/index.js";
import type { AreaDeps } from "../area.js";
import { bearerOf, principalName, principalOf } from "../auth/index.js";
import { jsonSchemaOf } from "../validation.js";
import { createEnrollmentToken, createOperatorToken, enrollNode } from "./store.js";

/**
 * Identity: operator tokens (POST /v1/tokens), enrollment tokens (POST
 * /v1/enrollment-tokens) and enrollment itself (POST /v1/nodes/enroll,
 * public in ROUTES because the single-use enrollment token in its
 * Authorization header is what authenticates it).
 */
export function identityRoutes(deps: AreaDeps): FastifyPluginAsync {
  return (app) => {
    app.post(
      "/v1/tokens",
      { config: { route: "createToken" }, schema: { tags: ["identity"], body: jsonSchemaOf(CreateTokenRequest), response: { 201: jsonSchemaOf(CreatedToken, "output") } } },
      async (req, reply) => {
        const body = req.body as CreateTokenRequest;
        const issued = await createOperatorToken(deps.store, deps.clock, body);
        req.log.info({ token_id: issued.token_id, role: issued.role, by: principalName(principalOf(req)) }, "operator token created");
        return reply.code(201).send(issued);
      },
    );
    app.post(
      "/v1/enrollment-tokens",
      { config: { route: "createEnrollmentToken" }, schema: { tags: ["identity"], body: jsonSchemaOf(CreateEnrollmentTokenRequest), response: { 201: jsonSchemaOf(CreatedEnrollmentToken, "output") } } },
      async (req, reply) => {
        const body = req.body as CreateEnrollmentTokenRequest;
        const issued = await createEnrollmentToken(deps.store, deps.clock, body, principalName(principalOf(req)));
        return reply.code(201).send(issued);
      },
    );
    app.post(
      "/v1/nodes/enroll",
      { config: { route: "enroll" }, schema: { tags: ["identity"], security: [{ bearer: [] }], body: jsonSchemaOf(EnrollRequest), response: { 201: jsonSchemaOf(Enrolled, "output") } } },
      async (req, reply) => {
        const body = req.body as EnrollRequest;
        const enrolled = await enrollNode(deps.store, deps.clock, bearerOf(req.headers.authorization), body);
        req.log.info({ node_id: enrolled.node_id }, "node enrolled");
        return reply.code(201).send(enrolled);
      },
    );
    return Promise.resolve();
  };
}
