// A lying registry paginating the referrers API: pages and descriptors are bounded,
// a repeated page is refused, and the truncation is reported (OCI_TOO_MANY_REFERRERS)
// so verification can fail closed. A plain node:http server plays the registry.
import { afterEach, describe, expect, it } from "vitest";
import { createServer } from "node:http";
import type { Server } from "node:http";
import { openRepository, parseReference, readReferrerSources, MAX_REFERRER_PAGES, MAX_REFERRERS, OciError } from "./index.js";

const SUBJECT = `sha256:${"c".repeat(64)}`;

interface Lying {
  pages: number;
  url: string;
}

/** A registry whose referrers answer always links to another page (`next(url)`), `perPage` descriptors each. */
async function lyingRegistry(perPage: number, next: (url: string) => string): Promise<{ server: Server; seen: Lying }> {
  const seen: Lying = { pages: 0, url: "" };
  const page = JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: Array.from({ length: perPage }, (_, i) => ({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${i.toString(16).padStart(64, "0")}`, size: 1, artifactType: "application/vnd.autonomyops.release-statement.v1+dsse" })) });
  const server = createServer((req, res) => {
    if (req.url?.startsWith(`/v2/x/referrers/${SUBJECT}`)) {
      seen.pages += 1;
      seen.url = req.url;
      res.writeHead(200, { "content-type": "application/vnd.oci.image.index.v1+json", link: `</v2/x/referrers/${SUBJECT}${next(req.url)}>; rel="next"` });
      res.end(page);
      return;
    }
    // The capability probe (referrers of the empty digest) answers an empty index: the API exists.
    if (req.url?.startsWith("/v2/x/referrers/")) {
      res.writeHead(200, { "content-type": "application/vnd.oci.image.index.v1+json" });
      res.end(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [] }));
      return;
    }
    res.writeHead(req.url === "/v2/" ? 200 : 404, { "content-type": "application/json" });
    res.end("{}");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, seen };
}

const repoOf = (server: Server) => openRepository(parseReference(`127.0.0.1:${(server.address() as { port: number }).port}/x:v1`), { plainHttp: true });

describe("referrers pagination from a lying registry", () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  it("attack endless pagination: alternating ?p=a / ?p=b next links are not followed 10 000 times — a repeated page stops at once with OCI_TOO_MANY_REFERRERS", async () => {
    const lying = await lyingRegistry(1, (url) => (url.includes("?p=a") ? "?p=b" : "?p=a"));
    server = lying.server;
    const e = await repoOf(server).referrersNative(SUBJECT).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OciError);
    expect((e as OciError).code).toBe("OCI_TOO_MANY_REFERRERS");
    expect(lying.seen.pages).toBe(3); // start, ?p=a, ?p=b; the second ?p=a is not fetched
  });

  it("attack endless pagination: ever-new next links stop after the page bound", async () => {
    let n = 0;
    const lying = await lyingRegistry(1, () => `?p=${++n}`);
    server = lying.server;
    const e = await repoOf(server).referrersNative(SUBJECT).catch((x: unknown) => x);
    expect((e as OciError).code).toBe("OCI_TOO_MANY_REFERRERS");
    expect(lying.seen.pages).toBe(MAX_REFERRER_PAGES);
  });

  it("attack endless data: descriptors beyond the bound are not kept, and readReferrerSources reports the listing truncated", async () => {
    let n = 0;
    const lying = await lyingRegistry(100, () => `?p=${++n}`);
    server = lying.server;
    const repo = repoOf(server);
    expect(((await repo.referrersNative(SUBJECT).catch((x: unknown) => x)) as OciError).code).toBe("OCI_TOO_MANY_REFERRERS");
    expect(lying.seen.pages).toBe(Math.ceil((MAX_REFERRERS + 1) / 100));
    const sources = await readReferrerSources(repo, SUBJECT);
    expect(sources.truncated).toBe(true);
    expect(sources.found).toEqual([]);
    expect(sources.problems).toContainEqual(expect.objectContaining({ source: "referrers-api", reason: expect.stringMatching(/^OCI_TOO_MANY_REFERRERS/) as unknown }));
  });
});
