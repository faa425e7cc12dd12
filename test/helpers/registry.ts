/**
 * Starts the real Debian `docker-registry` (distribution 2.8) on loopback for
 * integration tests, optionally behind a bearer-token server of our own so the
 * client's token flow runs against the registry's real JWT verification.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { findCommand } from "./peers.js";

const READY_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 3_000;

/** The fixed user the test token server accepts. */
export const TEST_USER = "tester";
/** The fixed password the test token server accepts. */
export const TEST_PASSWORD = "s3cret-test-password";
const TOKEN_SERVICE = "autonomy-test-registry";
const TOKEN_ISSUER = "autonomy-test-issuer";

export interface StartedRegistry {
  /** `127.0.0.1:PORT`, as a registry reference spells the host. */
  host: string;
  /** The registry's filesystem storage root (contains `docker/registry/v2/...`). */
  dataDir: string;
  stop(): Promise<void>;
}

export interface StartRegistryOptions {
  auth?: "none" | "token";
}

export async function startRegistry(opts: StartRegistryOptions = {}): Promise<StartedRegistry> {
  const root = await mkdtemp(join(tmpdir(), "autonomy-registry-"));
  const dataDir = join(root, "data");
  let tokenServer: TokenServer | undefined;
  let child: ChildProcess | undefined;
  try {
    if (opts.auth === "token") tokenServer = await startTokenServer(root);
    const port = await freePort();
    const configPath = join(root, "config.yml");
    await writeFile(configPath, registryConfig(dataDir, port, tokenServer));
    // Looked up like every peer (test/helpers/peers.ts); suites check it first with needs("docker-registry").
    child = spawn(findCommand("docker-registry") ?? "docker-registry", ["serve", configPath], { stdio: ["ignore", "ignore", "pipe"] });
    const host = `127.0.0.1:${port}`;
    await waitReady(host, child);
    const running = child;
    const tokens = tokenServer;
    return { host, dataDir, stop: () => stopAll(running, tokens, root) };
  } catch (e) {
    await stopAll(child, tokenServer, root);
    throw e;
  }
}

function registryConfig(dataDir: string, port: number, token: TokenServer | undefined): string {
  const lines = [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(dataDir)}`,
    "  delete:",
    "    enabled: true",
    "http:",
    `  addr: 127.0.0.1:${port}`,
    // A fixed secret keeps upload-state HMACs stable and silences the startup warning.
    `  secret: ${randomBytes(16).toString("hex")}`,
  ];
  if (token) {
    lines.push(
      "auth:",
      "  token:",
      `    realm: ${JSON.stringify(token.realm)}`,
      `    service: ${TOKEN_SERVICE}`,
      `    issuer: ${TOKEN_ISSUER}`,
      `    rootcertbundle: ${JSON.stringify(token.certPath)}`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** A loopback port that was free a moment ago (bound, then released). */
export async function freePort(): Promise<number> {
  const srv = createNetServer();
  await new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", resolve);
  });
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

async function waitReady(host: string, child: ChildProcess): Promise<void> {
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => {
    stderr = (stderr + d).slice(-4000);
  });
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`docker-registry exited early (${child.exitCode ?? child.signalCode}): ${stderr}`);
    }
    try {
      const res = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.body?.cancel();
      // 401 is a healthy answer when token auth is on.
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer GET /v2/ on ${host} within ${READY_TIMEOUT_MS} ms: ${stderr}`);
}

async function stopAll(child: ChildProcess | undefined, tokens: TokenServer | undefined, root: string): Promise<void> {
  if (child) await stopChild(child);
  if (tokens) await tokens.close();
  await rm(root, { recursive: true, force: true });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------
// Bearer-token server: issues ES256 JWTs signed by a throwaway issuer key. The
// registry trusts the issuer's self-signed certificate (rootcertbundle) and,
// being distribution 2.8, needs the certificate in the JWT header (x5c).

interface TokenServer {
  realm: string;
  certPath: string;
  close(): Promise<void>;
}

async function startTokenServer(root: string): Promise<TokenServer> {
  const keyPath = join(root, "issuer.key");
  const certPath = join(root, "issuer.crt");
  await promisify(execFile)("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", keyPath, "-out", certPath, "-days", "2", "-subj", "/CN=autonomy-test-token-issuer",
  ]);
  const key = createPrivateKey(await readFile(keyPath));
  const certDer = new X509Certificate(await readFile(certPath)).raw.toString("base64");
  const server = createServer((req, res) => answerToken(req, res, key, certDer));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;
  return { realm: `http://127.0.0.1:${port}/token`, certPath, close: () => closeServer(server) };
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

function answerToken(req: IncomingMessage, res: ServerResponse, key: KeyObject, certDer: string): void {
  const url = new URL(req.url ?? "/", "http://localhost");
  if (url.pathname !== "/token" || !validBasic(req.headers.authorization)) {
    res.writeHead(401, { "content-type": "application/json" }).end('{"details":"bad credentials"}');
    return;
  }
  const access = url.searchParams.getAll("scope").flatMap(parseScope);
  const token = signJwt(key, certDer, {
    iss: TOKEN_ISSUER,
    sub: TEST_USER,
    aud: url.searchParams.get("service") ?? TOKEN_SERVICE,
    exp: Math.floor(Date.now() / 1000) + 300,
    nbf: Math.floor(Date.now() / 1000) - 10,
    iat: Math.floor(Date.now() / 1000),
    jti: randomBytes(8).toString("hex"),
    access,
  });
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token, expires_in: 300 }));
}

function validBasic(header: string | undefined): boolean {
  if (!header?.startsWith("Basic ")) return false;
  return Buffer.from(header.slice(6), "base64").toString("utf8") === `${TEST_USER}:${TEST_PASSWORD}`;
}

/** `repository:name:pull,push` → one access entry granting exactly what was asked. */
function parseScope(scope: string): { type: string; name: string; actions: string[] }[] {
  const parts = scope.split(":");
  if (parts.length < 3) return [];
  const actions = parts.pop()?.split(",") ?? [];
  const [type, ...name] = parts;
  return type === undefined ? [] : [{ type, name: name.join(":"), actions }];
}

function signJwt(key: KeyObject, certDer: string, claims: Record<string, unknown>): string {
  const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${b64({ typ: "JWT", alg: "ES256", x5c: [certDer] })}.${b64(claims)}`;
  const sig = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  return `${input}.${sig.toString("base64url")}`;
}
