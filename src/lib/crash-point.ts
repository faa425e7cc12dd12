/**
 * Fault injection for crash tests: when AUTONOMY_CRASH_POINT names this point,
 * the process SIGKILLs itself right here, exactly as a power cut or OOM kill
 * would stop it (no exit handlers, no flushing). Costs one env lookup
 * otherwise. Tests use it to hit every window between durable steps
 * deterministically; random-time SIGKILL tests cover the rest.
 */
export function crashPoint(name: string): void {
  if (process.env.AUTONOMY_CRASH_POINT === name) process.kill(process.pid, "SIGKILL");
}
