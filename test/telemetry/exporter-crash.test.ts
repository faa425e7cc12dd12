/**
 * At-least-once across real process deaths: an exporter process drains a WAL
 * that another process keeps appending to, and is SIGKILLed in the middle of
 * a request, three times; a fresh one finishes. The receiver (ours,
 * implementing the OTLP/HTTP JSON contract) checks at every request that
 * telemetry.pos covers only seqs it acknowledged earlier.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, describe, expect, it } from "vitest";
import { Wal, nodeWalFs, readGeneration, readPos } from "../../src/telemetry/index.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { startOtlpJsonLogsReceiver } from "../helpers/exporter-receivers.js";

const silent = { warn: () => undefined, error: () => undefined };
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

function child(args: string[]): { proc: ChildProcess; line: Promise<string>; exit: Promise<number | null> } {
  const proc = spawn(process.execPath, ["--import", "tsx", join(REPO_ROOT, "test/helpers/exporter-child.ts"), "otlp", ...args], { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "inherit"] });
  const rl = createInterface({ input: proc.stdout as NodeJS.ReadableStream });
  const line = new Promise<string>((resolve) => rl.once("line", resolve));
  const exit = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  return { proc, line, exit };
}

describe("exporter process killed with SIGKILL mid-drain", () => {
  it("re-sends after restart: every committed seq arrives, pos never skips an unconfirmed seq", async () => {
    const dir = await mkdtemp(join(tmpdir(), "exporter-crash-"));
    dirs.push(dir);
    const rx = await startOtlpJsonLogsReceiver();
    const acked = new Set<number>();
    const violations: string[] = [];
    let victim: ChildProcess | undefined;
    let killAt = Number.POSITIVE_INFINITY;
    rx.beforeAccept = async (records) => {
      const p = await readPos(dir);
      const pos = p.kind === "ok" ? p.pos : 0;
      for (let s = 1; s <= pos; s++) if (!acked.has(s)) violations.push(`pos ${pos} covers unacknowledged seq ${s}`);
      if (victim && rx.accepted + 1 >= killAt) {
        victim.kill("SIGKILL"); // dies with this request in flight: it never sees the answer
        victim = undefined;
        await new Promise((r) => setTimeout(r, 20));
        return;
      }
      for (const r of records) acked.add(r.seq);
    };
    // A writer keeps appending in this process while exporter processes come and go.
    const wal = await Wal.open(dir, { log: silent });
    let writing = true;
    const writer = (async () => {
      let i = 0;
      while (writing) {
        await Promise.all(Array.from({ length: 20 }, () => wal.append({ kind: ["error", "decision", "lifecycle", "heartbeat"][i % 4], i: i++ })));
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    try {
      for (const k of [4, 9, 6]) {
        const c = child([dir, rx.url]);
        expect(await c.line).toBe("started");
        killAt = rx.accepted + k;
        victim = c.proc;
        const code = await c.exit;
        expect(code).toBeNull(); // killed by the signal
      }
      writing = false;
      await writer;
      const total = wal.lastSeq;
      await wal.close();
      const last = child([dir, rx.url, "--once", String(total)]);
      expect(await last.line).toBe(`done ${total}`);
      expect(await last.exit).toBe(0);
      expect(violations).toEqual([]);
      const seen = new Set(rx.arrivals.map((a) => a.seq));
      const missing = Array.from({ length: total }, (_, i) => i + 1).filter((s) => !seen.has(s));
      expect(missing).toEqual([]);
      expect(await readPos(dir)).toEqual({ kind: "ok", pos: total, generation: (await readGeneration(nodeWalFs, dir)).id });
      expect(rx.violations).toEqual([]);
    } finally {
      writing = false;
      await writer.catch(() => undefined);
      await wal.close().catch(() => undefined);
      await rx.close();
    }
  });
});
