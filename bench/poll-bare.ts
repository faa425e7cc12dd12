/**
 * The peer of bench/poll: a bare Fastify server (no logger, no auth, no schema,
 * no store) whose one route answers the poll the way ours does — ETag and
 * 304 when If-None-Match names it. Run as its own process by bench/poll.ts;
 * prints its URL on stdout, stops on SIGTERM.
 * Usage: node --import tsx bench/poll-bare.ts <release_id>
 */
import Fastify from "fastify";

const etag = `"${process.argv[2] ?? "rel-0000000000000000"}"`;
const app = Fastify({ logger: false });
app.get("/v1/releases/latest", (req, reply) => {
  void reply.header("etag", etag).header("cache-control", "no-cache");
  if (req.headers["if-none-match"] === etag) return reply.code(304).send();
  return reply.send({ release_id: etag });
});
const url = await app.listen({ host: "127.0.0.1", port: 0 });
process.stdout.write(`${url}\n`);
process.once("SIGTERM", () => void app.close().then(() => process.exit(0)));
