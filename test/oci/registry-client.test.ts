/**
 * Integration tests of the registry client against the real Debian
 * docker-registry (distribution 2.8.2), started per suite on loopback. Where a
 * test rewrites traffic with a fetch wrapper (failures, media types, a
 * referrers API 2.8 does not have), its name says so.
 */
import { randomBytes } from "node:crypto";
import { readFile, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { createServer, type AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256Digest } from "../../src/lib/index.js";
import { OciError } from "../../src/oci/errors.js";
import { openRegistryRepository, type RegistryOptions, type RegistryRepository } from "../../src/oci/registry-client.js";
import { EMPTY_JSON, EMPTY_JSON_DIGEST, MediaTypes } from "../../src/oci/types.js";
import { needs } from "../helpers/needs.js";
import { startRegistry, TEST_PASSWORD, TEST_USER, type StartedRegistry } from "../helpers/registry.js";

const KiB = 1024;

interface Call {
  method: string;
  url: URL;
  headers: Record<string, string>;
}

type Hook = (call: Call, real: () => Promise<Response>) => Promise<Response>;

/** A fetch that records every request and lets a test intercept them. */
function tracedFetch(hook?: Hook): { fetch: typeof fetch; calls: Call[] } {
  const calls: Call[] = [];
  const traced = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : input);
    const call: Call = { method: init?.method ?? "GET", url, headers: { ...(init?.headers as Record<string, string> | undefined) } };
    calls.push(call);
    const real = (): Promise<Response> => fetch(input, init);
    return hook ? hook(call, real) : real();
  };
  return { fetch: traced, calls };
}

function networkFailure(): TypeError {
  return new TypeError("fetch failed", { cause: Object.assign(new Error("socket hang up (injected)"), { code: "ECONNRESET" }) });
}

let repoCounter = 0;
function openRepo(host: string, opts: RegistryOptions = {}, name = `test/repo-${++repoCounter}`): RegistryRepository {
  return openRegistryRepository({ kind: "registry", registry: host, repository: name }, { plainHttp: true, ...opts });
}

/** A small OCI image manifest whose config is the empty JSON blob; pushes its blobs first. */
async function pushImage(repo: RegistryRepository, tag: string, note = "hello"): Promise<{ bytes: Uint8Array; digest: string }> {
  const layer = randomBytes(1000);
  const layerDigest = await repo.putBlob(layer);
  await repo.putBlob(EMPTY_JSON);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaTypes.imageManifest,
    config: { mediaType: MediaTypes.empty, digest: EMPTY_JSON_DIGEST, size: EMPTY_JSON.length },
    layers: [{ mediaType: MediaTypes.octetStream, digest: layerDigest, size: layer.length }],
    annotations: { note },
  };
  const bytes = new TextEncoder().encode(JSON.stringify(manifest));
  const digest = await repo.putManifest(bytes, MediaTypes.imageManifest, tag);
  return { bytes, digest };
}

function blobPath(dataDir: string, digest: string): string {
  const hex = digest.slice("sha256:".length);
  return join(dataDir, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
}

async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function jsonResponse(body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": MediaTypes.imageIndex, ...headers } });
}

needs("docker-registry").describe("when talking to an anonymous docker-registry 2.8", () => {
  let registry: StartedRegistry;

  beforeAll(async () => {
    registry = await startRegistry();
  });

  afterAll(async () => {
    await registry?.stop();
  });

  describe("when pushing blobs", () => {
    it("sends a blob no bigger than chunkSize in one PUT after the POST", async () => {
      const { fetch, calls } = tracedFetch();
      const repo = openRepo(registry.host, { fetch, chunkSize: 64 * KiB });
      const data = randomBytes(10 * KiB);
      const digest = await repo.putBlob(data);
      expect(digest).toBe(sha256Digest(data));
      expect(calls.map((c) => c.method)).toEqual(["HEAD", "POST", "PUT"]);
      expect(calls[2]?.url.searchParams.get("digest")).toBe(digest);
      expect(await repo.hasBlob(digest)).toBe(true);
    });

    it("sends a bigger blob as PATCH chunks with inclusive Content-Range, then PUT ?digest=", async () => {
      const { fetch, calls } = tracedFetch();
      const repo = openRepo(registry.host, { fetch, chunkSize: 64 * KiB });
      const data = randomBytes(300 * KiB);
      const progress: number[] = [];
      const digest = await repo.putBlob(data, { onProgress: (done) => progress.push(done) });
      const patches = calls.filter((c) => c.method === "PATCH");
      expect(patches.map((c) => c.headers["content-range"])).toEqual(["0-65535", "65536-131071", "131072-196607", "196608-262143", "262144-307199"]);
      expect(patches.every((c) => c.headers["content-type"] === "application/octet-stream")).toBe(true);
      expect(calls.at(-1)?.method).toBe("PUT");
      expect(progress.at(-1)).toBe(data.length);
      expect(Buffer.from(await repo.getBlob(digest)).equals(data)).toBe(true);
    });

    it("skips the upload when HEAD says the blob is already there", async () => {
      const data = randomBytes(2 * KiB);
      await openRepo(registry.host, {}, "test/present").putBlob(data);
      const { fetch, calls } = tracedFetch();
      await openRepo(registry.host, { fetch }, "test/present").putBlob(data);
      expect(calls.map((c) => c.method)).toEqual(["HEAD"]);
    });

    it("resumes from the registry's Range after a PATCH fails before reaching it (injected network error)", async () => {
      let patches = 0;
      const { fetch, calls } = tracedFetch(async (call, real) => {
        if (call.method === "PATCH" && ++patches === 2) throw networkFailure();
        return real();
      });
      const repo = openRepo(registry.host, { fetch, chunkSize: 64 * KiB });
      const data = randomBytes(300 * KiB);
      const digest = await repo.putBlob(data);
      const methods = calls.map((c) => c.method);
      expect(methods.filter((m) => m === "POST")).toHaveLength(1);
      // The status GET on the upload Location comes right after the failed PATCH.
      const failedAt = calls.findIndex((c, i) => c.method === "PATCH" && calls.slice(0, i).filter((p) => p.method === "PATCH").length === 1);
      expect(calls.slice(failedAt + 1).find((c) => c.method === "GET")?.url.pathname).toContain("/blobs/uploads/");
      const ranges = calls.filter((c) => c.method === "PATCH").map((c) => c.headers["content-range"]);
      expect(ranges).toEqual(["0-65535", "65536-131071", "65536-131071", "131072-196607", "196608-262143", "262144-307199"]);
      expect(Buffer.from(await repo.getBlob(digest)).equals(data)).toBe(true);
    });

    it("starts a new session when a PATCH landed but its answer was lost (injected after the real request)", async () => {
      let patches = 0;
      const { fetch, calls } = tracedFetch(async (call, real) => {
        const res = await real();
        if (call.method === "PATCH" && ++patches === 2) {
          await res.body?.cancel();
          throw networkFailure();
        }
        return res;
      });
      const repo = openRepo(registry.host, { fetch, chunkSize: 64 * KiB });
      const data = randomBytes(300 * KiB);
      const digest = await repo.putBlob(data);
      // registry 2.8 invalidates the old Location once a PATCH landed, so the client must start over.
      expect(calls.filter((c) => c.method === "POST")).toHaveLength(2);
      expect(Buffer.from(await repo.getBlob(digest)).equals(data)).toBe(true);
    });

    it("gives up with OCI_REGISTRY_UNREACHABLE after a bounded number of retries", async () => {
      const { fetch, calls } = tracedFetch(async (call, real) => {
        if (call.method === "PATCH") throw networkFailure();
        return real();
      });
      const repo = openRepo(registry.host, { fetch, chunkSize: 64 * KiB });
      await expect(repo.putBlob(randomBytes(200 * KiB))).rejects.toMatchObject({ code: "OCI_REGISTRY_UNREACHABLE" });
      expect(calls.filter((c) => c.method === "PATCH")).toHaveLength(4);
    });
  });

  describe("when pulling blobs", () => {
    it("returns the verified bytes and reports progress", async () => {
      const repo = openRepo(registry.host);
      const data = randomBytes(200 * KiB);
      const digest = await repo.putBlob(data);
      const seen: [number, number][] = [];
      const got = await repo.getBlob(digest, { expectedSize: data.length, onProgress: (d, t) => seen.push([d, t]) });
      expect(Buffer.from(got).equals(data)).toBe(true);
      expect(seen.at(-1)).toEqual([data.length, data.length]);
    });

    it("throws OCI_SIZE_MISMATCH when the blob is not the expected size", async () => {
      const repo = openRepo(registry.host);
      const data = randomBytes(4 * KiB);
      const digest = await repo.putBlob(data);
      await expect(repo.getBlob(digest, { expectedSize: data.length - 1 })).rejects.toMatchObject({ code: "OCI_SIZE_MISMATCH" });
      await expect(repo.getBlob(digest, { expectedSize: data.length + 1 })).rejects.toMatchObject({ code: "OCI_SIZE_MISMATCH" });
    });

    it("verifyBlob streams and checks digest and size without returning the bytes", async () => {
      const repo = openRepo(registry.host);
      const data = randomBytes(300 * KiB);
      const digest = await repo.putBlob(data);
      const seen: [number, number][] = [];
      await repo.verifyBlob(digest, { expectedSize: data.length, onProgress: (d, t) => seen.push([d, t]) });
      expect(seen.at(-1)).toEqual([data.length, data.length]);
      await expect(repo.verifyBlob(digest, { expectedSize: data.length - 1 })).rejects.toMatchObject({ code: "OCI_SIZE_MISMATCH" });
      await expect(repo.verifyBlob(digest, { expectedSize: data.length + 1 })).rejects.toMatchObject({ code: "OCI_SIZE_MISMATCH" });
    });

    it("putBlobFrom spools a stream to a private temp file, verifies it, uploads it in chunks, and cleans up", async () => {
      const repo = openRepo(registry.host, { chunkSize: 256 * KiB, spoolAboveBytes: 512 * KiB });
      const data = randomBytes(1024 * KiB + 123);
      const digest = sha256Digest(data);
      async function* pieces(): AsyncGenerator<Uint8Array> {
        for (let at = 0; at < data.length; at += 100 * KiB) {
          await Promise.resolve(); // a stream: chunks arrive asynchronously
          yield data.subarray(at, at + 100 * KiB);
        }
      }
      const spools = async (): Promise<string[]> => (await readdir(tmpdir())).filter((n) => n.startsWith("autonomy-upload-"));
      const before = await spools();
      await repo.putBlobFrom(digest, data.length, pieces());
      await repo.verifyBlob(digest, { expectedSize: data.length });
      expect(await spools()).toEqual(before);
    });

    it("putBlobFrom refuses a stream that does not match its digest and uploads nothing (held and spooled)", async () => {
      const repo = openRepo(registry.host);
      const spooling = openRepo(registry.host, { spoolAboveBytes: 4 });
      const claimed = sha256Digest("the real thing");
      async function* forged(): AsyncGenerator<Uint8Array> {
        await Promise.resolve();
        yield new TextEncoder().encode("a forgery here");
      }
      await expect(repo.putBlobFrom(claimed, 14, forged())).rejects.toMatchObject({ code: "OCI_DIGEST_MISMATCH" });
      await expect(spooling.putBlobFrom(claimed, 14, forged())).rejects.toMatchObject({ code: "OCI_DIGEST_MISMATCH" });
      expect(await repo.hasBlob(claimed)).toBe(false);
    });

    it("throws OCI_BLOB_TOO_LARGE for a blob over the size limit", async () => {
      const repo = openRepo(registry.host, { maxBlobBytes: 8 * KiB });
      const digest = await repo.putBlob(randomBytes(16 * KiB));
      await expect(repo.getBlob(digest)).rejects.toMatchObject({ code: "OCI_BLOB_TOO_LARGE" });
      await expect(repo.getBlob(digest, { expectedSize: 16 * KiB })).rejects.toMatchObject({ code: "OCI_BLOB_TOO_LARGE" });
    });

    it("throws OCI_NOT_FOUND for a blob the repository does not have", async () => {
      const repo = openRepo(registry.host);
      await expect(repo.getBlob(sha256Digest("never pushed"))).rejects.toMatchObject({ code: "OCI_NOT_FOUND" });
      expect(await repo.hasBlob(sha256Digest("never pushed"))).toBe(false);
    });

    it("throws OCI_DIGEST_MISMATCH when the registry's stored bytes were altered", async () => {
      const repo = openRepo(registry.host);
      const data = randomBytes(8 * KiB);
      const digest = await repo.putBlob(data);
      const path = blobPath(registry.dataDir, digest);
      const stored = await readFile(path);
      stored[100] = (stored[100] ?? 0) ^ 0xff;
      await writeFile(path, stored);
      const err = await repo.getBlob(digest).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OciError);
      expect(err).toMatchObject({ code: "OCI_DIGEST_MISMATCH", details: { expected: digest, actual: sha256Digest(stored) } });
    });
  });

  describe("when pushing and pulling manifests", () => {
    it("returns byte-identical manifests by tag and by digest", async () => {
      const repo = openRepo(registry.host);
      const { bytes, digest } = await pushImage(repo, "v1");
      expect(digest).toBe(sha256Digest(bytes));
      const byTag = await repo.getManifest("v1");
      const byDigest = await repo.getManifest(digest);
      for (const m of [byTag, byDigest]) {
        expect(Buffer.from(m.bytes).equals(Buffer.from(bytes))).toBe(true);
        expect(m).toMatchObject({ digest, mediaType: MediaTypes.imageManifest });
      }
    });

    it("pushes a manifest by digest when no tag is given", async () => {
      const repo = openRepo(registry.host);
      const { digest } = await pushImage(repo, "first");
      const m = await repo.getManifest(digest);
      const again = await repo.putManifest(m.bytes, m.mediaType);
      expect(again).toBe(digest);
    });

    it("resolves a tag and a digest with HEAD", async () => {
      const { fetch, calls } = tracedFetch();
      const repo = openRepo(registry.host, { fetch });
      const { bytes, digest } = await pushImage(repo, "stable");
      calls.length = 0;
      const expected = { mediaType: MediaTypes.imageManifest, digest, size: bytes.length };
      expect(await repo.resolve("stable")).toEqual(expected);
      expect(await repo.resolve(digest)).toEqual(expected);
      expect(calls.map((c) => c.method)).toEqual(["HEAD", "HEAD"]);
    });

    it("resolves with GET when HEAD lacks Docker-Content-Digest (header stripped by a fetch wrapper)", async () => {
      const { fetch, calls } = tracedFetch(async (call, real) => {
        const res = await real();
        if (call.method !== "HEAD") return res;
        const headers = new Headers(res.headers);
        headers.delete("docker-content-digest");
        return new Response(null, { status: res.status, headers });
      });
      const repo = openRepo(registry.host, { fetch });
      const { bytes, digest } = await pushImage(repo, "nodigest");
      calls.length = 0;
      expect(await repo.resolve("nodigest")).toEqual({ mediaType: MediaTypes.imageManifest, digest, size: bytes.length });
      expect(calls.map((c) => c.method)).toEqual(["HEAD", "GET"]);
    });

    it("throws OCI_NOT_FOUND for an unknown tag", async () => {
      const repo = openRepo(registry.host);
      await pushImage(repo, "exists");
      await expect(repo.getManifest("missing")).rejects.toMatchObject({ code: "OCI_NOT_FOUND" });
      await expect(repo.resolve("missing")).rejects.toMatchObject({ code: "OCI_NOT_FOUND" });
    });

    it("refuses to push a manifest with an unknown media type (OCI_MEDIA_TYPE_UNKNOWN)", async () => {
      const repo = openRepo(registry.host);
      await expect(repo.putManifest(new TextEncoder().encode("{}"), "application/vnd.example.thing+json", "x")).rejects.toMatchObject({
        code: "OCI_MEDIA_TYPE_UNKNOWN",
      });
    });

    it("refuses a manifest served with an unknown media type (Content-Type rewritten by a fetch wrapper)", async () => {
      let rewrite = false;
      const { fetch } = tracedFetch(async (call, real) => {
        const res = await real();
        if (!rewrite || !call.url.pathname.includes("/manifests/")) return res;
        const headers = new Headers(res.headers);
        headers.set("content-type", "application/vnd.docker.distribution.manifest.v1+prettyjws");
        return new Response(await res.arrayBuffer(), { status: res.status, headers });
      });
      const repo = openRepo(registry.host, { fetch });
      await pushImage(repo, "odd");
      rewrite = true;
      await expect(repo.getManifest("odd")).rejects.toMatchObject({ code: "OCI_MEDIA_TYPE_UNKNOWN" });
      await expect(repo.resolve("odd")).rejects.toMatchObject({ code: "OCI_MEDIA_TYPE_UNKNOWN" });
    });

    it("throws OCI_DIGEST_MISMATCH when the stored manifest bytes were altered", async () => {
      const repo = openRepo(registry.host);
      const { digest } = await pushImage(repo, "tampered", "aaaaaaaa");
      const path = blobPath(registry.dataDir, digest);
      const stored = (await readFile(path, "utf8")).replace("aaaaaaaa", "aaaaaaab");
      await writeFile(path, stored);
      await expect(repo.getManifest(digest)).rejects.toMatchObject({ code: "OCI_DIGEST_MISMATCH", details: { expected: digest } });
      // By tag the registry still names the original digest, which the bytes no longer match.
      await expect(repo.getManifest("tampered")).rejects.toMatchObject({ code: "OCI_DIGEST_MISMATCH" });
    });
  });

  describe("when listing tags", () => {
    it("returns [] for a repository nobody pushed to", async () => {
      expect(await openRepo(registry.host).listTags()).toEqual([]);
    });

    it("returns every tag of a repository", async () => {
      const repo = openRepo(registry.host, { tagPageSize: 2 });
      const { bytes } = await pushImage(repo, "a");
      for (const tag of ["b", "c", "d", "e"]) await repo.putManifest(bytes, MediaTypes.imageManifest, tag);
      expect((await repo.listTags()).sort()).toEqual(["a", "b", "c", "d", "e"]);
    });

    it("follows Link rel=next pages (fake pages: registry 2.8 ignores ?n= and never paginates tags)", async () => {
      const pages: Record<string, { tags: string[]; next?: string }> = {
        "": { tags: ["a", "b"], next: "b" },
        b: { tags: ["c", "d"], next: "d" },
        d: { tags: ["e"] },
      };
      const { fetch, calls } = tracedFetch(async (call, real) => {
        if (!call.url.pathname.endsWith("/tags/list")) return real();
        const page = pages[call.url.searchParams.get("last") ?? ""] ?? { tags: [] };
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (page.next !== undefined) headers.link = `<${call.url.pathname}?n=2&last=${page.next}>; rel="next"`;
        return jsonResponse({ name: "x", tags: page.tags }, headers);
      });
      const repo = openRepo(registry.host, { fetch, tagPageSize: 2 });
      expect(await repo.listTags()).toEqual(["a", "b", "c", "d", "e"]);
      expect(calls.map((c) => c.url.searchParams.get("last"))).toEqual([null, "b", "d"]);
    });
  });

  describe("when probing capabilities", () => {
    it("reports no referrers API on registry 2.8 and asks only once", async () => {
      const { fetch, calls } = tracedFetch();
      const repo = openRepo(registry.host, { fetch });
      expect(await repo.capabilities()).toEqual({ referrersApi: false });
      expect(await repo.capabilities()).toEqual({ referrersApi: false });
      expect(calls.filter((c) => c.url.pathname.includes("/referrers/"))).toHaveLength(1);
    });

    it("reports the referrers API and pages through it when the registry has one (fake referrers API: 2.8 has none)", async () => {
      const subject = sha256Digest("subject");
      const d1 = { mediaType: MediaTypes.imageManifest, digest: sha256Digest("one"), size: 10, artifactType: MediaTypes.lock };
      const d2 = { mediaType: MediaTypes.imageManifest, digest: sha256Digest("two"), size: 20 };
      const index = (manifests: unknown[]): unknown => ({ schemaVersion: 2, mediaType: MediaTypes.imageIndex, manifests });
      const { fetch } = tracedFetch(async (call, real) => {
        if (!call.url.pathname.includes("/referrers/")) return real();
        if (!call.url.pathname.endsWith(subject)) return jsonResponse(index([]));
        if (call.url.searchParams.get("page") === "2") return jsonResponse(index([d2]));
        return jsonResponse(index([d1]), { link: `<${call.url.pathname}?page=2>; rel="next"` });
      });
      const repo = openRepo(registry.host, { fetch });
      expect(await repo.capabilities()).toEqual({ referrersApi: true });
      expect(await repo.referrersNative(subject)).toEqual([d1, d2]);
    });
  });

  describe("when the registry cannot be reached", () => {
    it("throws OCI_REGISTRY_UNREACHABLE for a closed port", async () => {
      const repo = openRepo(`127.0.0.1:${await closedPort()}`, { timeoutMs: 2000 });
      const err = await repo.getManifest("latest").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OciError);
      expect(err).toMatchObject({ code: "OCI_REGISTRY_UNREACHABLE" });
    });

    it("throws OCI_REGISTRY_UNREACHABLE when HTTPS meets a plain-HTTP registry", async () => {
      const repo = openRegistryRepository({ kind: "registry", registry: registry.host, repository: "test/tls" }, { timeoutMs: 2000 });
      await expect(repo.listTags()).rejects.toMatchObject({ code: "OCI_REGISTRY_UNREACHABLE" });
    });

    it("throws OCI_REGISTRY_UNREACHABLE when a request makes no progress (a fetch that never answers)", async () => {
      const hanging = ((_input: string | URL | Request, init?: RequestInit) =>
        new Promise<Response>((_resolve, reject) => {
          init?.signal?.addEventListener("abort", () => reject(init.signal?.reason as Error));
        })) as typeof fetch;
      const repo = openRepo(registry.host, { fetch: hanging, timeoutMs: 200 });
      await expect(repo.listTags()).rejects.toMatchObject({ code: "OCI_REGISTRY_UNREACHABLE" });
    });
  });
});

// The token server makes its issuer certificate with openssl.
needs("docker-registry", "openssl").describe("when the registry requires bearer tokens", () => {
  let registry: StartedRegistry;

  beforeAll(async () => {
    registry = await startRegistry({ auth: "token" });
  });

  afterAll(async () => {
    await registry?.stop();
  });

  it("pushes and pulls with the right credentials, fetching one token per scope", async () => {
    const { fetch, calls } = tracedFetch();
    const repo = openRepo(registry.host, { fetch, username: TEST_USER, password: TEST_PASSWORD, chunkSize: 64 * KiB });
    const big = randomBytes(150 * KiB);
    const digest = await repo.putBlob(big);
    const { bytes, digest: manifestDigest } = await pushImage(repo, "v1");
    expect(Buffer.from(await repo.getBlob(digest)).equals(big)).toBe(true);
    expect(Buffer.from((await repo.getManifest("v1")).bytes).equals(Buffer.from(bytes))).toBe(true);
    expect(await repo.resolve("v1")).toMatchObject({ digest: manifestDigest });
    expect(await repo.listTags()).toEqual(["v1"]);
    // One token for pull, one for pull,push: later requests reuse them.
    expect(calls.filter((c) => c.url.pathname === "/token")).toHaveLength(2);
  });

  it("follows a blob redirect to another origin without sending the token there (redirect injected by a fetch wrapper)", async () => {
    let registryAuth: string | undefined;
    const { fetch, calls } = tracedFetch(async (call, real) => {
      const isBlobGet = call.method === "GET" && call.url.pathname.includes("/blobs/sha256:");
      if (isBlobGet && call.url.hostname === "127.0.0.1" && call.headers.authorization !== undefined) {
        registryAuth = call.headers.authorization;
        const storage = new URL(call.url);
        storage.hostname = "localhost"; // same server, different origin: stands in for a blob store
        return new Response(null, { status: 307, headers: { location: storage.href } });
      }
      if (isBlobGet && call.url.hostname === "localhost") {
        // A pre-signed storage URL needs no token; fetch the real bytes on the blob store's behalf.
        const real127 = new URL(call.url);
        real127.hostname = "127.0.0.1";
        return globalThis.fetch(real127, { headers: { authorization: registryAuth ?? "" } });
      }
      return real();
    });
    const repo = openRepo(registry.host, { fetch, username: TEST_USER, password: TEST_PASSWORD });
    const data = randomBytes(3 * KiB);
    const digest = await repo.putBlob(data);
    expect(Buffer.from(await repo.getBlob(digest)).equals(data)).toBe(true);
    const storageCall = calls.find((c) => c.url.hostname === "localhost");
    expect(storageCall).toBeDefined();
    expect(storageCall?.headers.authorization).toBeUndefined();
  });

  it("throws OCI_AUTH_FAILED with wrong credentials, without echoing them", async () => {
    const repo = openRepo(registry.host, { username: TEST_USER, password: "wrong-password-123" });
    const err = await repo.putBlob(randomBytes(100)).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: "OCI_AUTH_FAILED" });
    expect(JSON.stringify(err)).not.toContain("wrong-password-123");
  });

  it("throws OCI_AUTH_FAILED without credentials", async () => {
    await expect(openRepo(registry.host).listTags()).rejects.toMatchObject({ code: "OCI_AUTH_FAILED" });
  });
});
