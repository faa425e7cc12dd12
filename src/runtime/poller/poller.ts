import { CpClientError } from "../../cpapi/index.js";
import type { CpClient, Release } from "../../cpapi/index.js";
import { AutonomyError, ExitCodes, RUNTIME_VERSION, systemClock } from "../../lib/index.js";
import type { Clock, Rng } from "../../lib/index.js";
import type { RepositoryOptions } from "../../oci/index.js";
import type { EngineCompiler } from "../../policy/index.js";
import { readNodeState, requireTrustRoot, writeControlPlane } from "../../node/index.js";
import type { ControlPlaneFile } from "../../node/index.js";
import { backoffDelay, sleep } from "../../telemetry/index.js";
import { failedPollDelay, pollBackoffCap, steadyPollDelay } from "./timing.js";
import { activateRelease } from "../activation.js";
import type { WalAppender } from "../wal-sink.js";
import { RuntimeError } from "../errors.js";
import { LifecycleReporter } from "./lifecycle.js";
import { pullReference } from "./location.js";

export interface PollerOptions {
  stateRoot: string;
  /** Authenticated with the node credential. */
  client: CpClient;
  /** The node's enrollment (`control-plane.json`); updated when a release from this control plane is activated. */
  enrollment: ControlPlaneFile;
  channel: string;
  wal: WalAppender;
  /** Longest gap between two polls; each gap is drawn from [interval/2, interval] (default 30 s). */
  intervalMs?: number;
  /** Cap of the failure backoff (default 5 min, at least the interval). */
  maxBackoffMs?: number;
  /** Heartbeat at most this often (default: the poll interval). */
  heartbeatMs?: number;
  /** Write an unchanged `polled` at most once per this many polls (default 120: an hour at 30 s). */
  polledEvery?: number;
  /** The WAL generation for heartbeats. */
  walGeneration?: () => string | null;
  clock?: Clock;
  /** Jitter source; seeded in tests so a run replays (default Math.random). */
  random?: Rng;
  repositoryOptions?: RepositoryOptions;
  compile?: EngineCompiler;
  /** How many rejected release ids are remembered (default {@link MAX_REJECTED}). */
  maxRejected?: number;
}

/** What one poll did; `delayMs` is how long to wait before the next. */
export interface PollStep {
  outcome: "release" | "not_modified" | "none" | "error";
  delayMs: number;
  /** What became of the candidate, when there was one this poll. */
  candidate?: { release_id: string; result: "activated" | "verify_failed" | "activate_failed" | "rejected_before" | "retry_later" };
  error?: string;
}

export interface PollerStatus {
  polls: number;
  consecutive_failures: number;
  last_outcome: PollStep["outcome"] | null;
  latest_release_id: string | null;
  /** Releases that failed verification (newest {@link MAX_REJECTED}), not verified again while the trust root is unchanged. */
  rejected: string[];
  retrying: { release_id: string; attempts: number } | null;
  ack_failures: number;
  wal_failures: number;
  heartbeat_failures: number;
  enrollment_write_failures: number;
}

/** A release being retried after a transient failure. */
interface Pending { release_id: string; attempts: number; notBefore: number }

/** Boot epoch: 0 until the edge daemon (which owns boots) exists. */
const BOOT_EPOCH = 0;
/** How many rejected release ids are remembered by default: a control plane cycling through more costs one verification each, per cycle. */
export const MAX_REJECTED = 64;

/**
 * The node's release poller. Polls `GET /v1/releases/latest` with the last
 * ETag (a 304 costs no verification), and when the control plane names a
 * release that is not the current activation and has a higher sequence,
 * activates it through the same path as `autonomy runtime activate`: the
 * statement verified against the node's trust root, then its lock and bundle;
 * the control plane is never trusted for integrity. Every phase is a WAL
 * event and an ack (lifecycle.ts). Failures never touch the policy in force:
 * the node keeps enforcing it and keeps polling, with capped exponential
 * backoff and full jitter while the control plane is away.
 */
export class ReleasePoller {
  readonly #o: PollerOptions;
  readonly #clock: Clock;
  readonly #random: Rng;
  readonly #interval: number;
  readonly #cap: number;
  readonly #report: LifecycleReporter;
  #enrollment: ControlPlaneFile;
  #current: { release_id: string; lock_fingerprint: string | null } | null = null;
  #etag: string | undefined;
  #latest: Release | undefined;
  #failures = 0;
  #lastPolledKey: string | undefined;
  #unchangedPolls = 0;
  #nextHeartbeat = 0;
  /**
   * Releases that failed verification for good, oldest first, at most
   * MAX_REJECTED: never verified again, whatever the control plane offers in
   * between (a control plane alternating two forged releases costs two
   * verifications, not one per poll). Forgotten only when the trust root
   * changes (`#rejectedUnder`): a release refused under the old keys or
   * repository may verify under the new ones.
   */
  readonly #rejected = new Set<string>();
  #rejectedUnder: string | undefined;
  #detected: string | undefined;
  #pending: Pending | undefined;
  heartbeatFailures = 0;
  enrollmentWriteFailures = 0;
  #polls = 0;
  #lastOutcome: PollStep["outcome"] | null = null;

  constructor(o: PollerOptions) {
    this.#o = o;
    this.#clock = o.clock ?? systemClock;
    this.#random = o.random ?? Math.random;
    this.#interval = o.intervalMs ?? 30_000;
    this.#cap = pollBackoffCap(this.#interval, o.maxBackoffMs);
    this.#enrollment = o.enrollment;
    this.#report = new LifecycleReporter({ wal: o.wal, client: o.client, nodeId: o.enrollment.node_id, clock: this.#clock });
  }

  /** For status output and tests: what the poller has done and what failed (counts since start). */
  status(): PollerStatus {
    return {
      polls: this.#polls, consecutive_failures: this.#failures, last_outcome: this.#lastOutcome, latest_release_id: this.#latest?.release_id ?? null,
      rejected: [...this.#rejected], retrying: this.#pending ? { release_id: this.#pending.release_id, attempts: this.#pending.attempts } : null,
      ack_failures: this.#report.ackFailures, wal_failures: this.#report.walFailures, heartbeat_failures: this.heartbeatFailures,
      enrollment_write_failures: this.enrollmentWriteFailures,
    };
  }

  /** Polls until `signal` aborts; never throws for a control-plane or activation failure. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      // pollOnce handles every control-plane and activation failure itself; anything else
      // (the node state unreadable) is a failed poll too: the loop never dies while the runtime serves.
      const step = await this.pollOnce(signal).catch((e: unknown) => this.#pollFailed(e));
      await sleep(step.delayMs, signal);
    }
  }

  /** One poll (and, when due, a heartbeat and an activation attempt). */
  async pollOnce(signal?: AbortSignal): Promise<PollStep> {
    await this.#heartbeatIfDue(signal);
    const step = await this.#poll(signal);
    this.#polls += 1;
    this.#lastOutcome = step.outcome;
    return step;
  }

  async #poll(signal?: AbortSignal): Promise<PollStep> {
    let outcome: PollStep["outcome"];
    try {
      const r = await this.#o.client.latestRelease(this.#o.channel, this.#etag, signal ? { signal } : {});
      outcome = r.status;
      if (r.status === "release") {
        this.#etag = r.etag;
        this.#latest = r.release;
      } else if (r.status === "none") {
        this.#etag = undefined;
        this.#latest = undefined;
      }
    } catch (e) {
      return this.#pollFailed(e);
    }
    this.#failures = 0;
    await this.#polled(outcome);
    const candidate = await this.#candidate();
    const result = candidate ? await this.#consider(candidate, signal) : undefined;
    return { outcome, delayMs: this.#steadyDelay(), ...(candidate && result ? { candidate: { release_id: candidate.release_id, result } } : {}) };
  }

  async #pollFailed(e: unknown): Promise<PollStep> {
    this.#failures += 1;
    const cpError: CpClientError | undefined = e instanceof CpClientError ? e : undefined;
    const code = errorCode(e);
    const problem = cpError?.problemCode ? `${code}/${cpError.problemCode}` : code;
    await this.#polled("error", problem, e instanceof Error ? e.message : String(e));
    // Retry-After is honoured as a floor (up to the cap): a busy control plane said when.
    const retryAfter = cpError?.retryAfterMs ?? undefined;
    const delayMs = failedPollDelay(this.#failures, this.#cap, this.#random, retryAfter);
    return { outcome: "error", delayMs, error: problem };
  }

  /**
   * `polled` goes to the WAL (and is acked when it names a release) when what
   * the poll saw changed: the first poll, another release, none ↔ some, the
   * control plane failing or back; an unchanged poll only once per
   * `polledEvery`, so an idle node does not fill its WAL (at 30 s, two
   * events a day's worth of polls would otherwise be 2,880).
   */
  async #polled(outcome: PollStep["outcome"], errorCode?: string, detail?: string): Promise<void> {
    const r = this.#latest;
    const key = outcome === "error" ? `error:${errorCode}` : `ok:${r?.release_id ?? "none"}`;
    this.#unchangedPolls = key === this.#lastPolledKey ? this.#unchangedPolls + 1 : 0;
    if (key === this.#lastPolledKey && this.#unchangedPolls % (this.#o.polledEvery ?? 120) !== 0) return;
    this.#lastPolledKey = key;
    const named = outcome !== "error" && r !== undefined;
    await this.#report.phase("polled", {
      ...(named ? { release_id: r.release_id, sequence: r.sequence, lock_fingerprint: r.lock_fingerprint } : {}),
      ...(errorCode !== undefined ? { error_code: errorCode, detail: detail?.slice(0, 512) } : {}),
      extra: { outcome, channel: this.#o.channel, unchanged_polls: this.#unchangedPolls },
    });
  }

  /** The latest release when it is new to this node: not the current activation's, and a higher sequence. */
  async #candidate(): Promise<Release | undefined> {
    const r = this.#latest;
    if (r === undefined) return undefined;
    const state = await readNodeState(this.#o.stateRoot);
    const current = state.activation;
    if (this.#currentReleaseId(current?.statement_digest) === r.release_id) return undefined;
    return r.sequence > (current?.sequence ?? 0) ? r : undefined;
  }

  /**
   * The control plane's release this node runs, as last seen (each heartbeat reads the
   * node's activation; an activation sets it at once): stamped on decisions and tool
   * results so the control plane can count them per release. Null when unknown or not
   * a release from this control plane.
   */
  current(): { release_id: string; lock_fingerprint: string | null } | null {
    return this.#current;
  }

  #currentReleaseId(statementDigest: string | undefined): string | null {
    const a = this.#enrollment.activated_release;
    return a !== undefined && statementDigest !== undefined && a.statement_digest === statementDigest ? a.release_id : null;
  }

  async #consider(r: Release, signal?: AbortSignal): Promise<NonNullable<PollStep["candidate"]>["result"]> {
    await this.#forgetRejectedOnTrustChange();
    if (this.#rejected.has(r.release_id)) return "rejected_before";
    if (this.#pending?.release_id === r.release_id && this.#clock.now() < this.#pending.notBefore) return "retry_later";
    if (this.#detected !== r.release_id) {
      // A different release: what was remembered about the previous one no longer applies.
      this.#detected = r.release_id;
      if (this.#pending?.release_id !== r.release_id) this.#pending = undefined;
      await this.#report.phase("candidate_detected", facts(r));
    }
    return this.#attempt(r, signal);
  }

  async #attempt(r: Release, _signal?: AbortSignal): Promise<"activated" | "verify_failed" | "activate_failed"> {
    let verifiedFp: string | undefined;
    await this.#report.phase("verify_started", facts(r));
    try {
      // Pulled from the trust root's repository at the control plane's digest, never from where the control plane says.
      const ref = pullReference(r, await requireTrustRoot(this.#o.stateRoot));
      const result = await activateRelease({
        ref, stateRoot: this.#o.stateRoot, clock: this.#clock, runtimeVersion: RUNTIME_VERSION,
        ...(this.#o.repositoryOptions ? { repositoryOptions: this.#o.repositoryOptions } : {}),
        ...(this.#o.compile ? { compile: this.#o.compile } : {}),
        onVerified: async (report) => {
          const subject = report.statement.predicate.image.digest;
          if (subject !== r.image_digest) {
            throw new RuntimeError("RELEASE_LOCATION_UNTRUSTED", `release ${r.release_id}: the verified statement is for image ${subject}, not ${r.image_digest} as the control plane said`, { details: { release_id: r.release_id, image_digest: r.image_digest, statement_image_digest: subject } });
          }
          verifiedFp = report.statement.predicate.lock.behavioral_fingerprint;
          await this.#report.phase("verify_passed", { ...facts(r), lock_fingerprint: verifiedFp });
          await this.#report.phase("activation_started", { ...facts(r), lock_fingerprint: verifiedFp });
        },
      });
      this.#enrollment = { ...this.#enrollment, activated_release: { release_id: r.release_id, statement_digest: result.activation.statement_digest } };
      this.#current = { release_id: r.release_id, lock_fingerprint: result.activation.lock_fingerprint ?? null };
      // The activation is committed whatever happens here: a file that cannot be written
      // (disk full) only makes heartbeats name the release after the next start; counted.
      await writeControlPlane(this.#o.stateRoot, this.#enrollment).catch(() => void (this.enrollmentWriteFailures += 1));
      this.#pending = undefined;
      this.#nextHeartbeat = 0; // tell the control plane now
      await this.#report.phase("activated", { ...facts(r), lock_fingerprint: result.activation.lock_fingerprint, extra: { changed: result.changed, statement_digest: result.activation.statement_digest } });
      return "activated";
    } catch (e) {
      const phase = verifiedFp === undefined ? "verify_failed" : "activate_failed";
      const code = errorCode(e);
      const permanent = e instanceof AutonomyError && (e as AutonomyError).exitCode === ExitCodes.verification;
      if (permanent) this.#reject(r.release_id);
      else this.#retryLater(r.release_id);
      await this.#report.phase(phase, { ...facts(r), ...(verifiedFp ? { lock_fingerprint: verifiedFp } : {}), error_code: code, detail: (e instanceof Error ? e.message : String(e)).slice(0, 512), extra: { will_retry: !permanent } });
      return phase;
    }
  }

  #reject(releaseId: string): void {
    this.#rejected.delete(releaseId);
    this.#rejected.add(releaseId);
    for (const old of this.#rejected) {
      if (this.#rejected.size <= (this.#o.maxRejected ?? MAX_REJECTED)) break;
      this.#rejected.delete(old);
    }
  }

  /** A changed trust root (keys, threshold, channel, repository) voids what was refused under the old one. */
  async #forgetRejectedOnTrustChange(): Promise<void> {
    const t = await requireTrustRoot(this.#o.stateRoot).catch(() => undefined);
    const under = t === undefined ? "none" : t.updated_at;
    if (this.#rejectedUnder !== undefined && under !== this.#rejectedUnder) this.#rejected.clear();
    this.#rejectedUnder = under;
  }

  /** A transient failure (registry away, state locked, disk): retried with capped exponential backoff and full jitter. */
  #retryLater(releaseId: string): void {
    const attempts = (this.#pending?.release_id === releaseId ? this.#pending.attempts : 0) + 1;
    const wait = backoffDelay(attempts, { baseMs: this.#interval, maxMs: this.#cap * 2, jitter: 1 }, this.#random);
    this.#pending = { release_id: releaseId, attempts, notBefore: this.#clock.now() + wait };
  }

  /** Spread over [interval/2, interval]: a fleet that started together does not poll together. */
  #steadyDelay(): number {
    return steadyPollDelay(this.#interval, this.#random);
  }

  async #heartbeatIfDue(signal?: AbortSignal): Promise<void> {
    const now = this.#clock.now();
    if (now < this.#nextHeartbeat) return;
    this.#nextHeartbeat = now + (this.#o.heartbeatMs ?? this.#interval);
    try {
      const a = (await readNodeState(this.#o.stateRoot)).activation;
      const releaseId = this.#currentReleaseId(a?.statement_digest);
      this.#current = releaseId === null ? null : { release_id: releaseId, lock_fingerprint: a?.lock_fingerprint ?? null };
      await this.#o.client.heartbeat(this.#enrollment.node_id, {
        release_id: releaseId,
        activation_sequence: a?.sequence ?? null,
        lock_fingerprint: a?.lock_fingerprint ?? null,
        boot_epoch: BOOT_EPOCH,
        wal_generation: this.#o.walGeneration?.() ?? null,
        runtime_version: RUNTIME_VERSION.slice(0, 64),
      }, signal ? { signal } : {});
    } catch {
      this.heartbeatFailures += 1; // best effort: the next one says the same
    }
  }
}

function errorCode(e: unknown): string {
  return e instanceof AutonomyError ? (e as AutonomyError).code : "INTERNAL";
}

function facts(r: Release): { release_id: string; sequence: number; lock_fingerprint: string } {
  return { release_id: r.release_id, sequence: r.sequence, lock_fingerprint: r.lock_fingerprint };
}
