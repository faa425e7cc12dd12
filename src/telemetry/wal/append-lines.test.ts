// The `wal append` line protocol as a function (the CLI only wires stdin and stdout to it).
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { appendJsonLines } from "./append-lines.js";
import { WalError } from "./errors.js";
import { Wal } from "./wal.js";

const lines = (...l: string[]): Readable => Readable.from([l.join("\n")]);

async function committed(dir: string): Promise<unknown[]> {
  const wal = await Wal.open(dir);
  try {
    return (await wal.readFrom(1, 100)).map((e) => e.event);
  } finally {
    await wal.close();
  }
}

describe("appendJsonLines", () => {
  it("appends one entry per JSON object line, skips blank lines, and acks each seq in order once committed", async () => {
    const dir = await mkdtemp(join(tmpdir(), "wal-lines-"));
    const acks: number[] = [];
    await appendJsonLines(dir, lines('{"a":1}', "", "  ", '{"a":2}', '{"a":3}'), (seq) => void acks.push(seq));
    expect(acks).toEqual([1, 2, 3]);
    expect(await committed(dir)).toEqual([{ a: 1 }, { a: 2 }, { a: 3 }]);
  });

  it.each([
    ["not JSON", "{", "stdin line 2 is not JSON"],
    ["an array", "[1]", "stdin line 2 is not a JSON object"],
    ["null", "null", "stdin line 2 is not a JSON object"],
  ])("rejects a line that is %s with WAL_ENTRY_INVALID naming the line; entries before it stay committed", async (_what, bad, msg) => {
    const dir = await mkdtemp(join(tmpdir(), "wal-lines-"));
    const acks: number[] = [];
    const err = await appendJsonLines(dir, lines('{"a":1}', bad, '{"a":3}'), (seq) => void acks.push(seq)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WalError);
    expect(err).toMatchObject({ code: "WAL_ENTRY_INVALID" });
    expect((err as Error).message).toContain(msg);
    expect(acks).toEqual([1]);
    expect(await committed(dir)).toEqual([{ a: 1 }]);
  });
});
