/**
 * bench:poll and bench:ingest in their tiny mode (BENCH_QUICK=1: about a
 * second of load each): they run end to end and print well-formed rows with
 * non-zero rates. No timing is asserted here — the bars live in the benches
 * (they exit 1 and say "a bar was missed"); a tiny run on a busy machine may
 * miss one, so that exit is accepted, any other failure is not.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { needs } from "../helpers/needs.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

function runBench(script: string): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(process.execPath, ["--import", "tsx", script], { cwd: ROOT, env: { ...process.env, BENCH_QUICK: "1" }, timeout: 150_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The bench finished: 0, or 1 because a bar was missed (said on stderr) — never a crash. */
function expectFinished(r: Ran): void {
  if (r.code !== 0) expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 1, stderr: expect.stringContaining("a bar was missed") as unknown });
  expect(r.stdout).toMatch(/^Machine: \d+ × .+ Node v\d+.*load average [\d.]+ before/m);
}

/** Table rows (`| a | b | … |`) after the header and separator. */
function rows(stdout: string): string[][] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("| ") && !l.startsWith("|---"))
    .slice(1)
    .map((l) => l.slice(2, -2).split(" | "));
}

describe("bench smoke (BENCH_QUICK=1)", () => {
  it("bench:poll measures autonomy serve and bare fastify, every response a 304", async () => {
    const r = await runBench("bench/poll.ts");
    expectFinished(r);
    const table = rows(r.stdout);
    expect(table.map((c) => c[1]).sort()).toEqual(["autonomy serve", "bare fastify"]);
    for (const [round, , rps, p50, p99, total, not304, cpu] of table) {
      expect(round).toBe("1");
      expect(Number(rps)).toBeGreaterThan(0);
      expect(Number(total)).toBeGreaterThan(0);
      expect(Number.isFinite(Number(p50)) && Number.isFinite(Number(p99))).toBe(true);
      expect(Number(not304)).toBe(0);
      expect(Number(cpu)).toBeGreaterThan(0);
    }
    expect(r.stdout).toMatch(/^met: every response a 304/m);
    expect(r.stdout).toMatch(/^mean: ours \d+ requests\/s, bare fastify \d+ requests\/s, ratio [\d.]+ %/m);
  }, 160_000);

  needs("openssl").it("bench:relay measures the relay, its limit (TLS + the same durable write), the bare transport and the TLS ceiling for 64 B, 64 KiB and 4 MiB, and judges 4 MiB", async () => {
    const r = await runBench("bench/relay.ts");
    expectFinished(r);
    expect(r.stdout).toMatch(/temp dir .+ on \S+/);
    const table = rows(r.stdout);
    expect(table.map((c) => c[0])).toEqual(["64 B", "64 B", "64 B", "64 B", "64 KiB", "64 KiB", "64 KiB", "64 KiB", "4 MiB", "4 MiB", "4 MiB", "4 MiB"]);
    for (const [, , mib, spread, perSecond, p50, p99, segments] of table) {
      expect(Number(perSecond)).toBeGreaterThan(0);
      expect(Number(segments)).toBeGreaterThan(0);
      expect(spread).toMatch(/^[\d.]+–[\d.]+$/);
      expect(Number.isFinite(Number(mib)) && Number.isFinite(Number(p50)) && Number.isFinite(Number(p99))).toBe(true);
    }
    expect(r.stdout).toMatch(/^4 MiB: relay = [\d.]+ % of TLS\+fsync \(median of \d+ rounds: [\d.]+ %; over all rounds [\d.]+ %\), [\d.]+ % of TLS discard — bar ≥ 70 % of TLS\+fsync: (PASS|FAIL)$/m);
  }, 160_000);

  needs("postgresql").it("bench:ingest measures ours and the raw insert on SQLite and PostgreSQL, new and 50 % duplicate events", async () => {
    const r = await runBench("bench/ingest.ts");
    expectFinished(r);
    const table = rows(r.stdout);
    expect(table.map((c) => `${c[0] ?? ""}/${c[1] ?? ""}`)).toEqual(["SQLite/new events", "SQLite/50 % duplicates", "PostgreSQL/new events", "PostgreSQL/50 % duplicates"]);
    for (const [, , ours, raw, ratio, bar] of table) {
      expect(Number(ours)).toBeGreaterThan(0);
      expect(Number(raw)).toBeGreaterThan(0);
      expect(ratio).toMatch(/^[\d.]+ %$/);
      expect(["met", "NOT met"]).toContain(bar);
    }
  }, 160_000);
});
