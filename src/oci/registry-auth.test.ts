import { describe, expect, it } from "vitest";
import { parseWwwAuthenticate, RegistryAuth, type RegistryAuthOptions } from "./registry-auth.js";

describe("parseWwwAuthenticate", () => {
  describe("when the header is a Docker bearer challenge", () => {
    it("returns realm, service and a scope that contains a comma", () => {
      const header = 'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/agent:pull,push"';
      expect(parseWwwAuthenticate(header)).toEqual([
        {
          scheme: "bearer",
          params: { realm: "https://auth.example.com/token", service: "registry.example.com", scope: "repository:team/agent:pull,push" },
        },
      ]);
    });

    it("lowercases the scheme and parameter names but keeps values", () => {
      expect(parseWwwAuthenticate('BEARER Realm="https://A/t", SERVICE = "Svc"')).toEqual([{ scheme: "bearer", params: { realm: "https://A/t", service: "Svc" } }]);
    });
  });

  describe("when the header holds several challenges", () => {
    it("returns each with its own parameters", () => {
      expect(parseWwwAuthenticate('Basic realm="Registry Realm", Bearer realm="https://auth/token",service="r"')).toEqual([
        { scheme: "basic", params: { realm: "Registry Realm" } },
        { scheme: "bearer", params: { realm: "https://auth/token", service: "r" } },
      ]);
    });
  });

  describe("when values are unusual", () => {
    it("unescapes quoted-pair characters", () => {
      expect(parseWwwAuthenticate('Basic realm="say \\"hi\\", ok"')[0]?.params.realm).toBe('say "hi", ok');
    });

    it("accepts an unquoted URL value", () => {
      expect(parseWwwAuthenticate("Bearer realm=https://auth/token,service=reg")[0]?.params).toEqual({ realm: "https://auth/token", service: "reg" });
    });

    it("returns a scheme without parameters", () => {
      expect(parseWwwAuthenticate("Basic")).toEqual([{ scheme: "basic", params: {} }]);
    });

    it("returns [] for an empty or garbage header", () => {
      expect(parseWwwAuthenticate("")).toEqual([]);
      expect(parseWwwAuthenticate('  ,, "" ')).toEqual([]);
    });
  });
});

interface TokenCall {
  url: URL;
  authorization: string | undefined;
}

function fakeTokenServer(answer: (call: TokenCall) => Response): { fetch: typeof fetch; calls: TokenCall[] } {
  const calls: TokenCall[] = [];
  const fake = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const headers = (init?.headers ?? {}) as Record<string, string>;
    const call = { url: new URL(input instanceof Request ? input.url : input), authorization: headers.authorization };
    calls.push(call);
    return Promise.resolve(answer(call));
  };
  return { fetch: fake, calls };
}

function auth(fetchFn: typeof fetch, extra: Partial<RegistryAuthOptions> = {}): RegistryAuth {
  return new RegistryAuth({ registry: "reg.example", fetch: fetchFn, timeoutMs: 1000, userAgent: "test", allowPlainHttpRealm: false, ...extra });
}

const CHALLENGE = 'Bearer realm="https://auth.example/token",service="reg.example",scope="repository:a:pull"';
const creds = { username: "alice", password: "hunter2-secret" };

describe("RegistryAuth", () => {
  describe("when answering a bearer challenge", () => {
    it("asks the realm for the challenged and the requested scope, with Basic credentials", async () => {
      const { fetch, calls } = fakeTokenServer(() => Response.json({ token: "tok-1", expires_in: 300 }));
      const header = await auth(fetch, { credentials: creds }).respond(CHALLENGE, "repository:a:pull,push");
      expect(header).toBe("Bearer tok-1");
      expect(calls[0]?.url.searchParams.get("service")).toBe("reg.example");
      expect(calls[0]?.url.searchParams.getAll("scope")).toEqual(["repository:a:pull", "repository:a:pull,push"]);
      expect(calls[0]?.authorization).toBe(`Basic ${Buffer.from("alice:hunter2-secret").toString("base64")}`);
    });

    it("caches the token per scope until it nearly expires", async () => {
      let now = 1_000_000;
      const { fetch } = fakeTokenServer(() => Response.json({ access_token: "tok-2", expires_in: 60 }));
      const a = auth(fetch, { clock: { now: () => now } });
      await a.respond(CHALLENGE, "repository:a:pull");
      expect(a.cachedHeader("repository:a:pull")).toBe("Bearer tok-2");
      expect(a.cachedHeader("repository:a:pull,push")).toBeUndefined();
      now += 55_000;
      expect(a.cachedHeader("repository:a:pull")).toBeUndefined();
    });

    it("throws OCI_AUTH_FAILED when the token server refuses, without echoing the password", async () => {
      const { fetch } = fakeTokenServer(() => new Response('{"errors":[{"code":"DENIED"}]}', { status: 401 }));
      const err = await auth(fetch, { credentials: creds })
        .respond(CHALLENGE, "repository:a:pull")
        .catch((e: unknown) => e);
      expect(err).toMatchObject({ code: "OCI_AUTH_FAILED" });
      expect(JSON.stringify(err) + String(err)).not.toContain("hunter2");
    });

    it("throws OCI_AUTH_FAILED when the answer has no usable token", async () => {
      const { fetch } = fakeTokenServer(() => Response.json({ token: "has spaces in it" }));
      await expect(auth(fetch).respond(CHALLENGE, "repository:a:pull")).rejects.toMatchObject({ code: "OCI_AUTH_FAILED" });
    });

    it("refuses to send credentials to a plain-HTTP realm unless allowed", async () => {
      const { fetch, calls } = fakeTokenServer(() => Response.json({ token: "t" }));
      const plain = 'Bearer realm="http://auth.example/token",service="reg.example"';
      await expect(auth(fetch, { credentials: creds }).respond(plain, "repository:a:pull")).rejects.toMatchObject({ code: "OCI_AUTH_FAILED" });
      expect(calls).toHaveLength(0);
      await expect(auth(fetch, { credentials: creds, allowPlainHttpRealm: true }).respond(plain, "repository:a:pull")).resolves.toBe("Bearer t");
    });

    it("throws OCI_REGISTRY_UNREACHABLE when the token server cannot be reached", async () => {
      const failing = (() => Promise.reject(new TypeError("fetch failed", { cause: Object.assign(new Error("x"), { code: "ECONNREFUSED" }) }))) as typeof fetch;
      await expect(auth(failing).respond(CHALLENGE, "repository:a:pull")).rejects.toMatchObject({ code: "OCI_REGISTRY_UNREACHABLE" });
    });
  });

  describe("when answering a Basic challenge", () => {
    it("returns the Basic header and sends it up front afterwards", async () => {
      const { fetch } = fakeTokenServer(() => new Response(null, { status: 500 }));
      const a = auth(fetch, { credentials: creds });
      const header = await a.respond('Basic realm="r"', "repository:a:pull");
      expect(header.startsWith("Basic ")).toBe(true);
      expect(a.cachedHeader("repository:b:pull,push")).toBe(header);
    });

    it("throws OCI_AUTH_FAILED without credentials", async () => {
      const { fetch } = fakeTokenServer(() => new Response(null, { status: 500 }));
      await expect(auth(fetch).respond('Basic realm="r"', "repository:a:pull")).rejects.toMatchObject({ code: "OCI_AUTH_FAILED" });
    });
  });

  describe("when the challenge is missing or unsupported", () => {
    it("throws OCI_AUTH_FAILED", async () => {
      const { fetch } = fakeTokenServer(() => new Response(null, { status: 500 }));
      await expect(auth(fetch).respond(null, "repository:a:pull")).rejects.toMatchObject({ code: "OCI_AUTH_FAILED" });
      await expect(auth(fetch).respond('Negotiate abc', "repository:a:pull")).rejects.toMatchObject({ code: "OCI_AUTH_FAILED" });
    });
  });
});
