import { describe, expect, it, vi } from "vitest";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { ExitCodes, UsageError } from "../lib/index.js";
import type { ExitCode } from "../lib/index.js";
import { action, outcome, runProgram } from "./run.js";

const CLI_DIR = fileURLToPath(new URL(".", import.meta.url));

function program(fn: () => Promise<{ exitCode: ExitCode } | void>): Command {
  const p = new Command("t");
  p.command("go").option("--json").action(action(fn));
  return p;
}

describe("when a command action ends", () => {
  it("exits 0 when it returns nothing", async () => {
    expect(await runProgram(program(() => Promise.resolve()), ["node", "t", "go"])).toBe(ExitCodes.ok);
  });

  it("exits with the code of the outcome it returns, without touching process.exitCode", async () => {
    const before = process.exitCode;
    expect(await runProgram(program(() => Promise.resolve(outcome(false, ExitCodes.walFailHard))), ["node", "t", "go"])).toBe(5);
    expect(await runProgram(program(() => Promise.resolve(outcome(false))), ["node", "t", "go"])).toBe(1);
    expect(await runProgram(program(() => Promise.resolve(outcome(true))), ["node", "t", "go"])).toBe(0);
    expect(process.exitCode).toBe(before);
  });

  it("exits with a thrown error's code and prints it once", async () => {
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      expect(await runProgram(program(() => Promise.reject(new UsageError("bad", "do better"))), ["node", "t", "go"])).toBe(ExitCodes.usage);
      expect(err.mock.calls.map((c) => String(c[0])).join("")).toBe("error: bad\nhint: do better\n");
    } finally {
      err.mockRestore();
    }
  });

  it("a mistyped option's suggestion is on the error line, not a visible \\u{a} escape (newcomer review)", async () => {
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const p = new Command("t");
      p.command("go").option("--devices <n>").action(action(() => Promise.resolve()));
      expect(await runProgram(p, ["node", "t", "go", "--device", "5"])).toBe(ExitCodes.usage);
      const printed = err.mock.calls.map((c) => String(c[0])).join("");
      expect(printed).toBe("error: unknown option '--device' (Did you mean --devices?)\nhint: run `t go --help` for usage\n");
    } finally {
      err.mockRestore();
    }
  });

  it("does not carry one run's failure into the next run", async () => {
    const failing = program(() => Promise.resolve(outcome(false)));
    expect(await runProgram(failing, ["node", "t", "go"])).toBe(1);
    expect(await runProgram(new Command("t").exitOverride(), ["node", "t"])).toBe(0);
  });
});

describe("the exit code is decided in one place", () => {
  it("no file of src/cli but run.ts sets process.exitCode or calls process.exit", async () => {
    const files = (await readdir(CLI_DIR, { recursive: true })).filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts") && f !== "run.ts");
    const offenders: string[] = [];
    for (const f of files) {
      const text = await readFile(join(CLI_DIR, f), "utf8");
      if (/process\.exit(Code)?\b/.test(text)) offenders.push(f);
    }
    expect(offenders).toEqual([]);
  });
});
