import { describe, expect, it, beforeEach } from "vitest";
import { access, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join, relative } from "node:path";
import { Wal, WalFailHard, walPaths } from "../telemetry/index.js";
import { buildBundle } from "../policy/index.js";
import { EXAMPLE_POLICY_DIR } from "../../test/helpers/policies.js";
import { loadPolicy, nodeWalLocation, stateRootPaths, walSteadyStateEvidence } from "./index.js";

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

async function openNodeWal(root: string): Promise<Wal> {
  const { dir, otherState } = nodeWalLocation(root);
  return Wal.open(dir, { otherState, env: {}, log: quiet });
}

async function failHardCause(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof WalFailHard) return e.code;
    throw e;
  }
  return "NO_ERROR";
}

describe("the state root (src/node)", () => {
  let root: string;
  beforeEach(async () => {
    root = join(await mkdtemp(join(tmpdir(), "state-root-")), "state");
  });

  it("keeps every path of its layout under the root", () => {
    const { root: _root, ...paths } = stateRootPaths(root);
    for (const [name, path] of Object.entries<string>(paths)) {
      const inside = relative(root, path);
      expect(inside !== "" && !inside.startsWith("..") && !isAbsolute(inside), `${name}: ${path}`).toBe(true);
    }
  });

  it("puts the bootstrap files where the original does (bootstrap/os_fingerprint.json, epoch/current|previous, runtime/)", () => {
    const p = stateRootPaths(root);
    expect([p.osFingerprint, p.epochCurrent, p.epochPrevious, p.runtimeStaging].map((x) => relative(root, x)))
      .toEqual([join("bootstrap", "os_fingerprint.json"), join("epoch", "current"), join("epoch", "previous"), "runtime"]);
  });

  it("creates the WAL with its safe point before the first node state is committed", async () => {
    const built = await buildBundle(EXAMPLE_POLICY_DIR, { name: "demo", version: "1.0.0", createdAt: new Date(0) });
    (await loadPolicy(root, built.bytes)).loaded.engine.dispose();
    await access(stateRootPaths(root).state);
    await access(walPaths(nodeWalLocation(root).dir).safeSeq);
  });

  describe("the steady-state list given to the WAL", () => {
    it("names state.json, trust.json and activation/", () => {
      const p = stateRootPaths(root);
      expect(walSteadyStateEvidence(root)).toEqual([p.state, p.trust, p.activation]);
      expect(nodeWalLocation(root)).toEqual({ dir: p.telemetryWal, otherState: [p.state, p.trust, p.activation] });
    });

    it("makes a lost safe point after a policy load a hard failure, not a first run", async () => {
      const built = await buildBundle(EXAMPLE_POLICY_DIR, { name: "demo", version: "1.0.0", createdAt: new Date(0) });
      (await loadPolicy(root, built.bytes)).loaded.engine.dispose();
      await rm(walPaths(nodeWalLocation(root).dir).safeSeq);
      expect(await failHardCause(openNodeWal(root))).toBe("SAFESEQ_MISSING");
    });

    it("makes a lost safe point next to activation/ a hard failure", async () => {
      await (await openNodeWal(root)).close();
      await mkdir(stateRootPaths(root).activation, { recursive: true });
      await rm(walPaths(nodeWalLocation(root).dir).safeSeq);
      expect(await failHardCause(openNodeWal(root))).toBe("SAFESEQ_MISSING");
    });

    it("treats a state root with no node state and no safe point as a first run", async () => {
      await mkdir(nodeWalLocation(root).dir, { recursive: true });
      const wal = await openNodeWal(root);
      expect(wal.recovered.mode).toBe("first_run");
      await wal.close();
    });
  });
});
