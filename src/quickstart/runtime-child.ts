import type { ChildProcess } from "node:child_process";
import { startAutonomyChild } from "./children.js";
import type { ExitStatus } from "./children.js";

export interface RuntimeChild {
  child: ChildProcess;
  url: string;
  /** Resolves with the exit status once the process is gone. */
  exited: Promise<ExitStatus>;
}

/**
 * `autonomy runtime start --state-root S --listen 127.0.0.1:0 --json` as a
 * real child process (so the tutorial can SIGKILL it); resolves once its
 * ready line on stderr names the URL.
 */
export async function startRuntimeChild(stateRoot: string, timeoutMs = 30_000): Promise<RuntimeChild> {
  const c = await startAutonomyChild({ name: "the runtime", timeoutMs, args: ["runtime", "start", "--state-root", stateRoot, "--listen", "127.0.0.1:0", "--json"] });
  return { child: c.child, url: c.url, exited: c.exited };
}
