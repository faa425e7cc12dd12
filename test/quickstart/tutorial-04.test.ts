/**
 * Tutorial 04 (seed once, relay to peers without a control plane, survive an
 * OS replacement), through the built launchers (`npm test` builds first):
 * every step must pass — edge-b and edge-c activate edge-a's release (same
 * statement, same sequence) received only through edged's relay, and edge-b
 * comes back from an OS replacement on the same activation with its boot
 * epoch advanced. `autonomy quickstart --tutorial 04` and `npm start` play it.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runTutorial04 } from "../../src/quickstart/index.js";

const EXAMPLES = fileURLToPath(new URL("../../examples", import.meta.url));
let root = "";
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "tutorial-04-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("tutorial 04 (relay and OS replacement)", () => {
  it("edge-a relays its activated release with edged to edge-b and edge-c, which activate it with no control plane; an OS replacement on edge-b reconstructs it on the same activation at boot epoch 1", async () => {
    const r = await runTutorial04({ dir: join(root, "t04"), examplesDir: EXAMPLES });
    const failed = r.steps.filter((s) => !s.ok).map((s) => `${s.step}: ${s.detail}`);
    expect(failed).toEqual([]);
    expect(r.steps.map((s) => s.step)).toEqual([
      "keys", "release", "trust roots", "edge-a activates", "release segment", "fleet CA", "edge.toml", "first precheck", "edged",
      "relay", "edge-b activates", "edge-c activates", "OS replacement on edge-b", "precheck after the OS replacement", "edge-b back", "stop",
    ]);
    expect(r.ok).toBe(true);
    expect(r.segment?.id).toMatch(/^[0-9a-f]{64}$/);
    const [a, b, c] = r.nodes;
    expect(a?.sequence).toBe(1);
    expect(a?.statement_digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Both peers activated exactly edge-a's release: same statement digest and sequence.
    for (const p of [b, c]) {
      expect(p?.statement_digest).toBe(a?.statement_digest);
      expect(p?.sequence).toBe(a?.sequence);
    }
    // None of them talks to a control plane.
    expect(r.nodes.every((n) => !n.control_plane)).toBe(true);
    // The OS replacement advanced edge-b's boot epoch only.
    expect(r.nodes.map((n) => n.boot_epoch)).toEqual([0, 1, 0]);
    const evidence = JSON.parse(await readFile(join(b?.stateRoot ?? "", "epoch", "current", "evidence.json"), "utf8")) as { epoch: number; previous_fingerprint: string; new_fingerprint: string; restored: { statement_digest: string | null } };
    expect(evidence.epoch).toBe(1);
    expect(evidence.new_fingerprint).not.toBe(evidence.previous_fingerprint);
    expect(evidence.restored.statement_digest).toBe(a?.statement_digest);
  }, 90_000);
});
