import { createInterface } from "node:readline";
import { WalError } from "./errors.js";
import { Wal } from "./wal.js";
import type { OpenWalOptions } from "./wal.js";

/**
 * The line protocol of `autonomy wal append` (docs/wal.md): one JSON object
 * per input line, blank lines ignored; `ack(seq)` is called for an entry only
 * once it is durable, in seq order. Opens the WAL at `dir`, closes it at the
 * end of the input or on the first error, and rejects with WAL_ENTRY_INVALID
 * for a line that is not a JSON object (entries before it stay committed).
 *
 * Appends are pipelined (group commit): a slow fsync does not stall reading;
 * acks still come in seq order because commits resolve in order.
 */
export async function appendJsonLines(dir: string, input: NodeJS.ReadableStream, ack: (seq: number) => void, opts: OpenWalOptions = {}): Promise<void> {
  const wal = await Wal.open(dir, opts);
  const acks: Promise<void>[] = [];
  let lineNo = 0;
  try {
    for await (const line of createInterface({ input, crlfDelay: Infinity })) {
      lineNo += 1;
      if (line.trim() === "") continue;
      acks.push(wal.append(parseLine(line, lineNo)).then(ack));
    }
  } finally {
    await Promise.allSettled(acks);
    await wal.close();
  }
  await Promise.all(acks);
}

function parseLine(line: string, lineNo: number): Record<string, unknown> {
  let event: unknown;
  try {
    event = JSON.parse(line);
  } catch {
    throw new WalError("WAL_ENTRY_INVALID", `stdin line ${lineNo} is not JSON`, "send one JSON object per line");
  }
  if (typeof event !== "object" || event === null || Array.isArray(event)) {
    throw new WalError("WAL_ENTRY_INVALID", `stdin line ${lineNo} is not a JSON object`, "send one JSON object per line");
  }
  return event as Record<string, unknown>;
}
