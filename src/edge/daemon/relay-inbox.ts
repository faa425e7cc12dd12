import { AutonomyError, ExitCodes, isoTime, messageOf, systemClock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import type { Logger } from "../../observability/index.js";
import type { InboxRejection, InboxRejectionCount } from "../relay/ledger.js";
import { INBOX_REJECTED_LIMIT } from "../relay/ledger.js";
import type { SegmentInfo, SegmentKind } from "../types.js";

/** One arrival in the receiver's inbox (exactly once per segment; `seq` increases). */
export interface InboxArrival {
  seq: number;
  segment: SegmentInfo;
  from: string;
}

/** The inbox side of the ledger the daemon applies, with its durable application cursor. */
export interface RelayInbox {
  /** Arrivals after `afterSeq`, oldest first. */
  inbox(afterSeq: number, limit: number): Promise<InboxArrival[]>;
  /** The last seq the application finished with (0 before the first). */
  applicationCursor(): Promise<number>;
  /** Durably records that everything up to `seq` was applied. */
  advanceApplicationCursor(seq: number): Promise<void>;
  /**
   * Durably moves the cursor past an entry that was NOT applied and records
   * why, in one step (the ledger's `passInboxEntry`). Optional: an inbox
   * without it gets the cursor advanced and the record kept in memory.
   */
  passEntry?(r: InboxRejection): Promise<void>;
  /** The recorded rejections (newest {@link INBOX_REJECTED_LIMIT}) and their counts, when the inbox keeps them. */
  rejections?(): InboxRejectionLog;
}

export interface InboxRejectionLog {
  entries: InboxRejection[];
  counts: InboxRejectionCount[];
}

/** What an application reports about a refusal, besides the error (a release: the statement it claims to carry). */
export type RefusalDetails = Pick<InboxRejection, "statement_digest" | "sequence">;

/** Applies one entry of a kind; throws to fail (see {@link InboxConsumerOptions.isFinal}). */
export interface InboxApplier {
  apply(entry: InboxArrival): Promise<void>;
  /** Extra fields for the record of an entry that was not applied (best effort; may not throw). */
  describe?(entry: InboxArrival): Promise<RefusalDetails>;
}

export interface InboxConsumerOptions {
  inbox: RelayInbox;
  /** The application per segment kind; a kind without one is passed (the cursor moves on). */
  appliers: Partial<Record<SegmentKind, InboxApplier>>;
  log: Logger;
  intervalMs: number;
  /** A failure that no retry can cure (refused for good). Default: an AutonomyError with exit code 4 (verification). */
  isFinal?: (e: unknown) => boolean;
  /** Tries of one entry before it is abandoned. Default {@link MAX_APPLY_ATTEMPTS}. */
  maxAttempts?: number;
  clock?: Clock;
}

/** Drains an entry that keeps failing (not a refusal) is tried in before it is passed as `abandoned`. */
export const MAX_APPLY_ATTEMPTS = 5;

export interface InboxConsumer {
  /** Applies what the inbox holds after the cursor, in order, until it is empty or an entry must be tried again. */
  drain(): Promise<void>;
  /** Entries passed without being applied (durable when the inbox keeps them). */
  rejections(): InboxRejectionLog;
  stop(): Promise<void>;
}

function isVerdict(e: unknown): boolean {
  return e instanceof AutonomyError && e.exitCode === ExitCodes.verification;
}

/** Log event names: a release keeps its documented `relayed_release_*` names, other kinds `inbox_entry_*`. */
function eventOf(kind: SegmentKind, what: "retry" | "refused" | "abandoned"): string {
  return kind === "release" ? `relayed_release_${what}` : `inbox_entry_${what}`;
}

function codeOf(e: unknown): string {
  return e instanceof AutonomyError ? String((e as AutonomyError).code) : "INTERNAL";
}

/**
 * The receiver's application loop, for every segment kind: each inbox entry
 * after the durable cursor goes to its kind's applier, in order. Applied: the
 * cursor advances. Refused for good (exit 4): the cursor passes it and the
 * refusal is recorded (status, metrics, log). Failed otherwise (disk, a busy
 * lock): the cursor stays, to try again at the next drain — at most
 * `maxAttempts` times, then it is passed as `abandoned` (INBOX_ENTRY_ABANDONED)
 * so that one poison entry, of whatever kind, cannot wedge every later
 * arrival. Attempts are counted in memory (a restart gives an entry fresh tries).
 */
export function startInboxConsumer(opts: InboxConsumerOptions): InboxConsumer {
  const { log, inbox } = opts;
  const clock = opts.clock ?? systemClock;
  const isFinal = opts.isFinal ?? isVerdict;
  const maxAttempts = opts.maxAttempts ?? MAX_APPLY_ATTEMPTS;
  const memory: InboxRejectionLog = { entries: [], counts: [] };
  /** Failed attempts of the entry at the cursor (only that one can be retried). */
  const attempts = new Map<number, number>();
  let running: Promise<void> | undefined;

  const pass = async (r: InboxRejection): Promise<void> => {
    if (inbox.passEntry) {
      await inbox.passEntry(r);
      return;
    }
    await inbox.advanceApplicationCursor(r.seq);
    memory.entries = [...memory.entries, r].slice(-INBOX_REJECTED_LIMIT);
    const hit = memory.counts.find((c) => c.kind === r.kind && c.outcome === r.outcome && c.code === r.code);
    if (hit) hit.count += 1;
    else memory.counts.push({ kind: r.kind, outcome: r.outcome, code: r.code, count: 1 });
  };

  /** True when the entry is done with (applied, refused or abandoned: the cursor is past it). */
  const consume = async (entry: InboxArrival): Promise<boolean> => {
    const applier = opts.appliers[entry.segment.kind];
    if (applier === undefined) {
      await inbox.advanceApplicationCursor(entry.seq);
      return true;
    }
    try {
      await applier.apply(entry);
    } catch (e) {
      const tries = (attempts.get(entry.seq) ?? 0) + 1;
      const final = isFinal(e);
      const fields = { seq: entry.seq, segment_id: entry.segment.id, kind: entry.segment.kind, from: entry.from, code: codeOf(e), error: messageOf(e), attempts: tries };
      if (!final && tries < maxAttempts) {
        attempts.clear();
        attempts.set(entry.seq, tries);
        log.warn({ event: eventOf(entry.segment.kind, "retry"), ...fields }, "inbox entry not applied yet (tried again at the next drain)");
        return false;
      }
      attempts.delete(entry.seq);
      const described = await applier.describe?.(entry).catch(() => ({})) ?? {};
      const record: InboxRejection = {
        seq: entry.seq, segment_id: entry.segment.id, kind: entry.segment.kind, from: entry.from,
        outcome: final ? "refused" : "abandoned", code: final ? fields.code : "INBOX_ENTRY_ABANDONED",
        ...(final ? {} : { cause_code: fields.code }), message: fields.error, attempts: tries, at: isoTime(clock), ...described,
      };
      await pass(record);
      if (final) log.warn({ event: eventOf(entry.segment.kind, "refused"), ...fields, ...described }, `relayed ${entry.segment.kind} segment refused by this node's rules; passed and recorded`);
      else log.error({ event: eventOf(entry.segment.kind, "abandoned"), ...fields }, `inbox entry still failing after ${tries} attempts; passed so later arrivals apply (send it again to retry)`);
      return true;
    }
    attempts.delete(entry.seq);
    await inbox.advanceApplicationCursor(entry.seq);
    return true;
  };

  const drainOnce = async (): Promise<void> => {
    let cursor = await inbox.applicationCursor();
    for (;;) {
      const batch = await inbox.inbox(cursor, 16);
      if (batch.length === 0) return;
      for (const entry of batch) {
        if (!(await consume(entry))) return;
        cursor = entry.seq;
      }
    }
  };
  const drain = (): Promise<void> => {
    running ??= drainOnce().catch((e: unknown) => log.warn({ event: "inbox_read_failed", error: messageOf(e) }, "reading the relay inbox failed (retried)")).finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void drain(), opts.intervalMs);
  timer.unref();
  return {
    drain,
    rejections: () => inbox.rejections?.() ?? { entries: [...memory.entries], counts: memory.counts.map((c) => ({ ...c })) },
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
