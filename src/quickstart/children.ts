import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { TutorialAborted } from "./wait.js";

/** The installed CLI launcher (bin/autonomy.js), two levels up from src/quickstart or dist/quickstart. */
export const AUTONOMY_BIN = fileURLToPath(new URL("../../bin/autonomy.js", import.meta.url));
/** The edge daemon's launchers (bin/edged.js, bin/edgectl.js). */
export const EDGED_BIN = fileURLToPath(new URL("../../bin/edged.js", import.meta.url));
export const EDGECTL_BIN = fileURLToPath(new URL("../../bin/edgectl.js", import.meta.url));

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A real `autonomy …` child process that printed its JSON ready line (`{"ok":true,"url":…}` on stderr). */
export interface AutonomyChild {
  name: string;
  child: ChildProcess;
  pid: number;
  url: string;
  /** The ready line, parsed. */
  ready: Record<string, unknown>;
  exited: Promise<ExitStatus>;
  /** The last few KiB of its stderr (logs), for failure messages. */
  tail(): string;
  /** Sends `signal` (default SIGTERM), then SIGKILL after `graceMs`; resolves once it is gone. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ExitStatus>;
}

export interface StartChildOptions {
  /** For messages: "control plane", "node-a". */
  name: string;
  args: string[];
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
  /** Stderr lines (logs) as they come, e.g. to catch the bootstrap token line. */
  onLine?: (line: string) => void;
  /** Ctrl-C while waiting for the ready line: the child is killed and the start rejects with TutorialAborted. */
  signal?: AbortSignal | undefined;
  /** The launcher to run (default {@link AUTONOMY_BIN}). */
  bin?: string;
  /** Which stderr JSON line means ready, and the address it names (default: `ok: true` with a `url`). */
  readyWhen?: (doc: Record<string, unknown>) => string | undefined;
}

const TAIL_BYTES = 4096;

/**
 * Spawns `node bin/autonomy.js ARGS` and resolves once a JSON line with
 * `ok: true` and a `url` appears on its stderr (every long-running command
 * prints one with --json). Rejects, naming what was awaited and the child's
 * last words, if it exits first or the timeout passes; the child is killed then.
 */
export async function startAutonomyChild(o: StartChildOptions): Promise<AutonomyChild> {
  const timeoutMs = o.timeoutMs ?? 30_000;
  const child = spawn(process.execPath, [o.bin ?? AUTONOMY_BIN, ...o.args], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { ...process.env, ...(o.env ?? {}) },
    ...(o.cwd !== undefined ? { cwd: o.cwd } : {}),
  });
  const exited = new Promise<ExitStatus>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  let tail = "";
  let partial = "";
  let ready: { url: string; doc: Record<string, unknown> } | undefined;
  let onReady: (() => void) | undefined;
  child.stderr?.on("data", (chunk: Buffer) => {
    const text = chunk.toString("utf8");
    tail = (tail + text).slice(-TAIL_BYTES);
    const lines = (partial + text).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) {
      o.onLine?.(line);
      const doc = ready === undefined ? readyDoc(line, o.readyWhen ?? urlOf) : undefined;
      if (doc) {
        ready = doc;
        onReady?.();
      }
    }
  });
  const stop = async (signal: NodeJS.Signals = "SIGTERM", graceMs = 10_000): Promise<ExitStatus> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    }
    return exited;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${o.name} (pid ${child.pid ?? "?"}) did not print its ready line within ${timeoutMs / 1000} s; its last output: ${tail.slice(-600) || "(none)"}`)), timeoutMs);
      onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      if (ready) onReady();
      o.signal?.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(new TutorialAborted());
      }, { once: true });
      if (o.signal?.aborted) reject(new TutorialAborted());
      child.once("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`${o.name} could not be started: ${e.message}`));
      });
      void exited.then((e) => {
        clearTimeout(timer);
        reject(new Error(`${o.name} exited (${e.code ?? e.signal ?? "?"}) before it was ready; its last output: ${tail.slice(-600) || "(none)"}`));
      });
    });
  } catch (e) {
    await stop("SIGKILL");
    throw e;
  }
  const r = ready as unknown as { url: string; doc: Record<string, unknown> };
  return { name: o.name, child, pid: child.pid ?? -1, url: r.url, ready: r.doc, exited, tail: () => tail, stop };
}

function readyDoc(line: string, readyWhen: (doc: Record<string, unknown>) => string | undefined): { url: string; doc: Record<string, unknown> } | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    const doc = JSON.parse(line) as Record<string, unknown>;
    const url = readyWhen(doc);
    return url === undefined ? undefined : { url, doc };
  } catch {
    return undefined;
  }
}

/** The ready line of `autonomy serve` / `runtime start --json`: `{"ok":true,"url":…}`. */
function urlOf(doc: Record<string, unknown>): string | undefined {
  return doc.ok === true && typeof doc.url === "string" ? doc.url : undefined;
}

/**
 * The children a tutorial started, stopped on every path: `stopAll` in a
 * `finally`, and a synchronous SIGKILL from a process `exit` hook for the
 * paths that never reach it (an uncaught error, process.exit elsewhere).
 */
export class ChildSet {
  readonly #children: AutonomyChild[] = [];
  readonly #onExit = (): void => {
    for (const c of this.#children) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGKILL");
  };

  constructor() {
    process.on("exit", this.#onExit);
  }

  add(c: AutonomyChild): AutonomyChild {
    this.#children.push(c);
    return c;
  }

  /** SIGTERM every child and wait: the later ones (nodes) together, then the first (the control plane they report to). */
  async stopAll(): Promise<ExitStatus[]> {
    try {
      const [first, ...rest] = this.#children;
      const out = await Promise.all(rest.map((c) => c.stop("SIGTERM")));
      if (first) out.unshift(await first.stop("SIGTERM"));
      return out;
    } finally {
      process.removeListener("exit", this.#onExit);
    }
  }
}
