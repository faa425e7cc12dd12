import type { FastifyPluginAsync } from "fastify";
import { z } from "zod";
import { CreateEnrollmentTokenRequest, CreateTokenRequest, CreatedEnrollmentToken, CreatedToken, EnrollRequest, Enrolled, NodeId, RevokedNodeCredential, TokenId, TokenList, TokenSummary } from "../../cpapi/index.js";
import type { AreaDeps } from "../area.js";

const TokenParams = z.strictObject({ token_id: TokenId });
const NodeParams = z.strictObject({ node_id: NodeId });

/** What the identity area needs beyond the common deps: a hook that drops this server's cached lookups after a revocation. */
export interface IdentityDeps extends AreaDeps {
  onRevoke?: () => void;
}
import { bearerOf, principalName, principalOf } from "../auth/index.js";
import { jsonSchemaOf } from "../validation.js";
import { createEnrollmentToken, createOperatorToken, enrollNode, listOperatorTokens, operatorToken, revokeNodeCredentials, revokeOperatorToken } from "./store.js";

/**
 * Identity: operator tokens (POST /v1/tokens), enrollment tokens (POST
 * /v1/enrollment-tokens) and enrollment itself (POST /v1/nodes/enroll,
 * public in ROUTES because the single-use enrollment token in its
 * Authorization header is what authenticates it).
 */
export function identityRoutes(deps: IdentityDeps): FastifyPluginAsync {
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
    app.get(
      "/v1/tokens",
      { config: { route: "listTokens" }, schema: { tags: ["identity"], response: { 200: jsonSchemaOf(TokenList, "output") } } },
      async () => ({ tokens: await listOperatorTokens(deps.store) }),
    );
    app.delete(
      "/v1/tokens/:token_id",
      { config: { route: "revokeToken" }, schema: { tags: ["identity"], params: jsonSchemaOf(TokenParams), response: { 200: jsonSchemaOf(TokenSummary, "output") } } },
      async (req) => {
        const { token_id } = req.params as z.infer<typeof TokenParams>;
        await operatorToken(deps.store, token_id);
        await revokeOperatorToken(deps.store, deps.clock, token_id);
        // This server stops honouring it at once; other servers on the same store within their auth cache lifetime (1 s).
        deps.onRevoke?.();
        req.log.warn({ token_id, by: principalName(principalOf(req)) }, "operator token revoked");
        return operatorToken(deps.store, token_id);
      },
    );
    app.delete(
      "/v1/nodes/:node_id/credential",
      { config: { route: "revokeNodeCredential" }, schema: { tags: ["identity"], params: jsonSchemaOf(NodeParams), response: { 200: jsonSchemaOf(RevokedNodeCredential, "output") } } },
      async (req) => {
        const { node_id } = req.params as z.infer<typeof NodeParams>;
        const revoked = await revokeNodeCredentials(deps.store, deps.clock, node_id);
        deps.onRevoke?.();
        req.log.warn({ node_id, revoked, by: principalName(principalOf(req)) }, "node credential revoked");
        return { node_id, revoked };
      },
    );
    return Promise.resolve();
  };
}
