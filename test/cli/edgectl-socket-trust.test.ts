// edgectl refuses a control socket another local user could have planted (issue 11, session 3, "sec"):
// the socket and its directories are lstat-ed before anything is sent. Each planted socket here is a real
// HTTP server answering a lying status; the tests assert it never received a connection.
import { createServer } from "node:http";
import type { Server } from "node:http";
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Writable } from "node:stream";
import { ControlClient, createControlServer, listenControlSocket, resolveSocketOwner } from "../../src/edge/index.js";
import { startEdgeDaemon } from "../../src/edge/daemon/daemon.js";
import { createLogger } from "../../src/observability/index.js";
import { loadJsonEdgeConfig, recordingParts, testEdgeConfig } from "../helpers/relay-parts-double.js";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import type { RunResult } from "../helpers/cli.js";
import { needs } from "../helpers/needs.js";
import { ControlDouble } from "../helpers/relay-control-double.js";

const MAIN = join(REPO_ROOT, "src/cli/edgectl-main.ts");
const OTHER_UID = 4242;

/** A planted "edged": answers every request with a made-up healthy status, and counts connections. */
class PlantedSocket {
  connections = 0;
  readonly #server: Server;
  constructor() {
    this.#server = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ enabled: true, node_id: "liar", queue: { deadletter: 0 } }));
    });
    this.#server.on("connection", () => void (this.connections += 1));
  }
  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen(path, () => resolve());
    });
  }
  close(): Promise<void> {
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}

describe("edgectl: the control socket's owner and directory are checked before connecting", () => {
  let dir: string;
  const planted: PlantedSocket[] = [];
  const edgectl = (sock: string, ...args: string[]): Promise<RunResult> => runProcess(process.execPath, ["--import", "tsx", MAIN, "--socket", sock, "relay", "status", ...args]);
  const plant = async (path: string): Promise<PlantedSocket> => {
    const p = new PlantedSocket();
    await p.listen(path);
    planted.push(p);
    return p;
  };
  /** A fresh private directory (0700, ours) under the test's directory. */
  const privateDir = async (name: string): Promise<string> => {
    const d = join(dir, name);
    await mkdir(d, { mode: 0o700 });
    return d;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edgectl-trust-"));
  });
  afterEach(async () => {
    for (const p of planted.splice(0)) await p.close();
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  needs("root").it("attack: a socket planted by another local user (not you, not root) is refused — CONTROL_SOCKET_UNTRUSTED, exit 4, nothing sent, the lie never printed", async () => {
    const d = await privateDir("owned-by-other");
    const sock = join(d, "ctl.sock");
    const liar = await plant(sock);
    await chown(sock, OTHER_UID, OTHER_UID);
    const r = await edgectl(sock);
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`owned by uid ${OTHER_UID}`);
    expect(r.stderr).toContain("--socket-owner");
    expect(r.stdout).not.toContain("liar");
    const j = await edgectl(sock, "--json");
    expect(j.code).toBe(4);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: false, code: "CONTROL_SOCKET_UNTRUSTED" });
    const o = await edgectl(sock, "--output", "json");
    expect(o.code).toBe(4);
    expect(JSON.parse(o.stdout)).toMatchObject({ ok: false, code: "CONTROL_SOCKET_UNTRUSTED" });
    expect(liar.connections).toBe(0);
    // The operator who knows edged runs under that account says so, and only then is it used.
    const trusted = await edgectl(sock, "--socket-owner", String(OTHER_UID), "--json");
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(liar.connections).toBe(1);
  });

  needs("root").it("attack: the default directory is missing and another user creates it with a socket inside (its directory owned by them) — refused, nothing sent", async () => {
    const d = await privateDir("planted-dir");
    const sock = join(d, "ctl.sock");
    const liar = await plant(sock);
    await chown(d, OTHER_UID, OTHER_UID); // the attacker's own 0700 directory, their socket in it
    await chown(sock, OTHER_UID, OTHER_UID);
    const r = await edgectl(sock, "--json");
    expect(r.code).toBe(4);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: "CONTROL_SOCKET_UNTRUSTED", message: expect.stringContaining(`its directory ${d} is owned by uid ${OTHER_UID}`) as unknown });
    expect(liar.connections).toBe(0);
  });

  it("attack: a socket in a directory others can write (0777, or sticky 1777 like /tmp) is refused — anyone could have created the name first", async () => {
    for (const mode of [0o777, 0o1777, 0o770]) {
      const d = await privateDir(`writable-${mode.toString(8)}`);
      await chmod(d, mode);
      const sock = join(d, "ctl.sock");
      const liar = await plant(sock);
      await expect(new ControlClient({ socketPath: sock }).status()).rejects.toMatchObject({ code: "CONTROL_SOCKET_UNTRUSTED", exitCode: 4, message: expect.stringContaining("writable by group or others") as unknown });
      expect(liar.connections).toBe(0);
    }
    // Through the CLI once: exit 4 with the hint.
    const r = await edgectl(join(dir, "writable-777", "ctl.sock"));
    expect(r.code).toBe(4);
    expect(r.stderr).toContain("hint: nothing was sent");
  });

  it("attack: a directory ABOVE the socket's that others can write (not sticky) is refused: they could move the directory and put theirs in place", async () => {
    const a = await privateDir("open-ancestor");
    await chmod(a, 0o777);
    const d = join(a, "run");
    await mkdir(d, { mode: 0o700 });
    const sock = join(d, "ctl.sock");
    const liar = await plant(sock);
    await expect(new ControlClient({ socketPath: sock }).status()).rejects.toMatchObject({ code: "CONTROL_SOCKET_UNTRUSTED", message: expect.stringContaining(`the directory above it ${a}`) as unknown });
    expect(liar.connections).toBe(0);
  });

  it("attack: a symlink at the socket path (pointing at a socket elsewhere) is refused, and so is a path that is not a socket", async () => {
    const elsewhere = await privateDir("elsewhere");
    const liar = await plant(join(elsewhere, "evil.sock"));
    const d = await privateDir("symlinked");
    await symlink(join(elsewhere, "evil.sock"), join(d, "ctl.sock"));
    const r = await edgectl(join(d, "ctl.sock"), "--json");
    expect(r.code).toBe(4);
    expect(JSON.parse(r.stdout)).toMatchObject({ code: "CONTROL_SOCKET_UNTRUSTED", message: expect.stringContaining("is a symbolic link") as unknown });
    expect(liar.connections).toBe(0);
    await writeFile(join(d, "file.sock"), "");
    await expect(new ControlClient({ socketPath: join(d, "file.sock") }).status()).rejects.toMatchObject({ code: "CONTROL_SOCKET_UNTRUSTED", message: expect.stringContaining("is not a socket") as unknown });
  });

  it("edged's own socket (0600 in a 0700 directory it created) is trusted, also reached through a symlinked directory; a missing one stays CONTROL_SOCKET_UNAVAILABLE", async () => {
    const sock = join(dir, "edged-own", "run", "ctl.sock");
    await mkdir(join(dir, "edged-own"), { mode: 0o700 });
    const app = await createControlServer({ control: new ControlDouble(), maxSegmentBytes: 1024 });
    const unlink = await listenControlSocket(app, sock);
    try {
      expect((await new ControlClient({ socketPath: sock }).status()).enabled).toBe(true);
      // /var/run → /run: a symlinked directory resolves once, then every directory on the real path is checked.
      await symlink(join(dir, "edged-own", "run"), join(dir, "run-link"));
      expect((await new ControlClient({ socketPath: join(dir, "run-link", "ctl.sock") }).status()).enabled).toBe(true);
      // A group-writable directory ABOVE it (umask 002) is tolerated; only the socket's own directory must not be.
      await chmod(join(dir, "edged-own"), 0o775);
      expect((await new ControlClient({ socketPath: sock }).status()).enabled).toBe(true);
    } finally {
      await app.close();
      await unlink();
    }
    await expect(new ControlClient({ socketPath: sock }).status()).rejects.toMatchObject({ code: "CONTROL_SOCKET_UNAVAILABLE" });
    await expect(new ControlClient({ socketPath: join(dir, "no-such-dir", "ctl.sock") }).status()).rejects.toMatchObject({ code: "CONTROL_SOCKET_UNAVAILABLE" });
  });

  it("--socket-owner takes a uid or a user name from the passwd file; an unknown name is a usage error (exit 2)", async () => {
    const passwd = join(dir, "passwd");
    await writeFile(passwd, "root:x:0:0:root:/root:/bin/sh\nedged:x:4242:4242::/var/lib/edged:/usr/sbin/nologin\n");
    expect(await resolveSocketOwner("edged", passwd)).toBe(4242);
    expect(await resolveSocketOwner("999", passwd)).toBe(999);
    expect(await resolveSocketOwner("nobody-here", passwd)).toBeUndefined();
    const r = await edgectl(join(dir, "x.sock"), "--socket-owner", "no-such-user-xyz");
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("no such user");
  });

  it("edged warns at start (control_socket_untrusted) when it serves in a directory edgectl would refuse, and not in its own 0700 directory", async () => {
    const lines: string[] = [];
    const log = createLogger({ name: "test.edged", level: "info", destination: new Writable({ write(c: Buffer, _e, cb) { lines.push(c.toString("utf8")); cb(); } }) });
    const run = async (sock: string, stateRoot: string): Promise<Record<string, unknown>[]> => {
      lines.length = 0;
      const config = testEdgeConfig(join(dir, "edge.json"), stateRoot);
      const d = await startEdgeDaemon(config, { controlSocket: sock, parts: recordingParts().factory, loadConfig: loadJsonEdgeConfig, log, watchConfig: false });
      await d.stop();
      return lines.join("").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l) as Record<string, unknown>);
    };
    const shared = await privateDir("shared-run");
    await chmod(shared, 0o1777);
    const warned = (await run(join(shared, "ctl.sock"), join(dir, "state-1"))).find((l) => l.event === "control_socket_untrusted");
    expect(warned).toMatchObject({ level: 40, reason: expect.stringContaining("writable by group or others") as unknown });
    expect((await run(join(dir, "own-run", "ctl.sock"), join(dir, "state-2"))).some((l) => l.event === "control_socket_untrusted")).toBe(false);
  });
});
