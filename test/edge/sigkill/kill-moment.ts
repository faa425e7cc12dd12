/**
 * When a round's SIGKILL lands. A uniform delay alone rarely hits the narrow
 * windows a broken durability order opens (an ack sent while the store's
 * fsync or the inbox commit is still running: a few ms in a round of
 * hundreds), so half the rounds aim at the receiver's store instead: inotify
 * on its segment directory reports a put's temp file (a store in progress, the
 * sender mid-push) or a segment named into place (stored; the inbox commit and
 * the ack are next), and the kill follows a seeded 0–40 ms later.
 */
import { watch } from "node:fs";

export type Moment = { kind: "timed"; afterMs: number } | { kind: "mid-store" | "stored"; delayMs: number };

const SEGMENT = /^[0-9a-f]{64}\.data$/;
/** A round whose sends never reach the receiver's store (its receiver is down) still ends. */
const EVENT_TIMEOUT_MS = 2_000;

/** Draws a moment: always four draws, so the seeded schedule does not depend on which kind comes out. */
export function drawMoment(rng: () => number): Moment {
  const k = rng();
  const afterMs = Math.floor(rng() * 700);
  const delayMs = Math.floor(rng() * 40);
  void rng(); // reserved
  if (k < 0.5) return { kind: "timed", afterMs };
  return { kind: k < 0.75 ? "mid-store" : "stored", delayMs };
}

/**
 * Starts waiting for the moment (call before the round's first send, so no
 * event is missed); the promise resolves when the kill is due, with how it
 * landed for the round's log line.
 */
export function awaitMoment(m: Moment, receiverStore: string): Promise<string> {
  const t0 = Date.now();
  if (m.kind === "timed") return new Promise((r) => setTimeout(() => r(`+${m.afterMs}ms`), m.afterMs));
  return new Promise((resolve) => {
    let done = false;
    const finish = (why: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      watcher?.close();
      resolve(why);
    };
    const timer = setTimeout(() => finish(`no ${m.kind} event within ${EVENT_TIMEOUT_MS}ms (+${Date.now() - t0}ms)`), EVENT_TIMEOUT_MS);
    let watcher: ReturnType<typeof watch> | undefined;
    try {
      watcher = watch(receiverStore, (_event, name) => {
        const hit = m.kind === "mid-store" ? name?.startsWith(".tmp-") === true : name !== null && SEGMENT.test(name);
        if (!hit || done) return;
        const at = Date.now() - t0;
        const why = `${m.delayMs}ms after ${m.kind === "mid-store" ? "a put's temp file appeared" : "a segment was named"} (+${at + m.delayMs}ms)`;
        // The first event decides; the kill is due delayMs later.
        done = true;
        clearTimeout(timer);
        watcher?.close();
        setTimeout(() => resolve(why), m.delayMs);
      });
      watcher.on("error", () => finish(`watch failed (+${Date.now() - t0}ms)`));
    } catch {
      finish("store directory not there yet (+0ms)");
    }
  });
}
