// `edgectl storage verify` as a child process against a control socket served in this process; the
// control's scrub is a REAL segment store's verify() (the rest of the control is the usual double).
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createControlServer, listenControlSocket, openSegmentStore } from "../../src/edge/index.js";
import type { SegmentStore } from "../../src/edge/index.js";
import { REPO_ROOT, runProcess } from "../helpers/cli.js";
import type { RunResult } from "../helpers/cli.js";
import { ControlDouble } from "../helpers/relay-control-double.js";

const MAIN = join(REPO_ROOT, "src/cli/edgectl-main.ts");
const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

describe("edgectl storage verify", () => {
  let dir: string;
  let sock: string;
  let store: SegmentStore;
  let close: () => Promise<void>;
  const edgectl = (...args: string[]): Promise<RunResult> => runProcess(process.execPath, ["--import", "tsx", MAIN, "--socket", sock, ...args]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "edgectl-storage-"));
    sock = join(dir, "ctl.sock");
    store = await openSegmentStore({ dir: join(dir, "segments"), ceilingBytes: 1 << 20 });
    const control = new ControlDouble();
    control.storageVerify = () => store.verify();
    const app = await createControlServer({ control, maxSegmentBytes: 1024 });
    const unlink = await listenControlSocket(app, sock);
    close = async () => {
      await app.close();
      await unlink();
    };
  });
  afterAll(async () => {
    await close();
    await rm(dir, { recursive: true, force: true });
  });

  it("--help names the scrub; a clean store exits 0; a tampered segment is reported, removed with a `corrupt` record, and exits 4 (text and --json)", async () => {
    const help = await edgectl("storage", "verify", "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/re-hash every stored segment/);

    const good = Buffer.from("a good segment");
    const bad = Buffer.from("a segment that will rot");
    await store.put(good, "data");
    await store.put(bad, "data");
    const clean = await edgectl("storage", "verify");
    expect(clean.code, clean.stderr).toBe(0);
    expect(clean.stdout).toContain(`verified 2 segment(s), ${good.byteLength + bad.byteLength} bytes: all match their ids`);

    await writeFile(join(dir, "segments", `${sha(bad)}.data`), Buffer.from("a segment that will ROT"));
    const found = await edgectl("storage", "verify", "--json");
    expect(found.code, found.stderr).toBe(4);
    const doc = JSON.parse(found.stdout) as { version: number; checked: number; removed: { id: string; reason: string }[] };
    expect(doc).toMatchObject({ version: 1, checked: 2, removed: [{ id: sha(bad), reason: "corrupt" }] });
    expect(store.has(sha(bad))).toBe(false);
    expect(store.evictions().map((e) => [e.id, e.reason])).toEqual([[sha(bad), "corrupt"]]);

    const after = await edgectl("storage", "verify");
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toContain("verified 1 segment(s)");
  });
});
