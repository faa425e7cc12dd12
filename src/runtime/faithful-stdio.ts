import { Transform } from "node:stream";
import type { Readable } from "node:stream";
import { parseFaithfulJson } from "../lib/index.js";
import { BODY_MAX_DEPTH } from "./faithful-body.js";

/** A pending line longer than this is passed on as it is (the SDK's reader refuses it: its buffer limit). */
const MAX_LINE_BYTES = 10 * 1024 * 1024;

/** JSON-RPC "invalid request", with our stable code in `data`. */
const INVALID_REQUEST = -32600;

/**
 * Puts a line filter in front of MCP's stdio input (one JSON-RPC message per
 * line): a message with a key given twice in one object, or nested deeper
 * than {@link BODY_MAX_DEPTH}, never reaches the MCP server (whose
 * `JSON.parse` would keep the last duplicate silently); `reply` gets a
 * JSON-RPC error line for it instead, naming the path, when it is a request
 * with an id. Every other line, malformed ones included, passes unchanged.
 *
 * ### Examples
 * ```ts
 * const input = faithfulLines(process.stdin, (line) => process.stdout.write(line));
 * await server.connect(new StdioServerTransport(input, process.stdout));
 * ```
 */
export function faithfulLines(input: Readable, reply: (line: string) => void): Readable {
  let pending: Buffer = Buffer.alloc(0);
  const filter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let nl: number;
      while ((nl = pending.indexOf(0x0a)) !== -1) {
        const line = pending.subarray(0, nl + 1);
        pending = pending.subarray(nl + 1);
        const refusal = refusalOf(line.toString("utf8"));
        if (refusal === undefined) this.push(line);
        else if (refusal !== null) reply(refusal);
      }
      if (pending.length > MAX_LINE_BYTES) {
        this.push(pending);
        pending = Buffer.alloc(0);
      }
      done();
    },
    flush(done) {
      if (pending.length > 0) this.push(pending);
      done();
    },
  });
  input.on("error", (e) => filter.destroy(e));
  return input.pipe(filter);
}

/** undefined: pass the line on; null: drop it silently (a notification); a string: the error line to answer with. */
function refusalOf(text: string): string | null | undefined {
  const r = parseFaithfulJson(text, { maxDepth: BODY_MAX_DEPTH });
  if (r.ok || r.kind === "syntax") return undefined;
  const id = requestId(text);
  if (id === undefined) return null;
  const message = `request not representable for the policy: ${r.path}: ${r.message}`;
  return `${JSON.stringify({ jsonrpc: "2.0", id, error: { code: INVALID_REQUEST, message, data: { code: "INPUT_NOT_REPRESENTABLE", status: 400, path: r.path } } })}\n`;
}

/** The id of a JSON-RPC request line (syntactically valid JSON), or undefined for a notification or no object. */
function requestId(text: string): string | number | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== "object" || Array.isArray(v)) return undefined;
    const id = (v as { id?: unknown }).id;
    return typeof id === "string" || typeof id === "number" ? id : undefined;
  } catch {
    return undefined;
  }
}
