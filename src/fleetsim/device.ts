import { RUNTIME_VERSION, isoTime, systemClock } from "../lib/index.js";
import type { Rng } from "../lib/index.js";
import type { CpClient, IngestEvent, LifecyclePhase, Release } from "../cpapi/index.js";
import { CpClientError, LIFECYCLE_EVENT_TYPE, MAX_EVENTS_PER_BATCH } from "../cpapi/index.js";
import { failedPollDelay, pollBackoffCap, steadyPollDelay } from "../runtime/index.js";
import { EventLog, lifecycleBody, toolCall } from "./events.js";
import type { PhaseFacts, Running } from "./events.js";
import type { Traffic } from "./stats.js";
import type { FaultKind } from "./spec.js";
import { verifyRelease } from "./verify.js";
import type { FleetTrust } from "./verify.js";

/** How a device behaves when nothing is wrong, and how a misbehaving one changes. */
export interface Behaviour {
  /** Simulated tool calls per poll while a release runs (each a decision, and a result when allowed). */
  callsPerPoll: number;
  denyRate: number;
  /** The deny rate of a `misbehave` device after an update. */
  misbehaveDenyRate: number;
  toolErrorRate: number;
}

export interface DeviceConfig {
  nodeId: string;
  fault: FaultKind | null;
  channel: string;
  pollIntervalMs: number;
  heartbeatMs: number;
  /** Events are sent at most this often (the run sends what is left when it stops). */
  eventFlushMs: number;
  trust: FleetTrust;
  behaviour: Behaviour;
  random: Rng;
  walGeneration: string;
  /**
   * The releases the fault shows with (a bad release: the device fails,
   * hangs, sees corrupt bytes or misbehaves only with these); absent: with
   * every release. A lab that rolls a bad release back needs the good one to
   * work on the same device.
   */
  faultReleases?: readonly string[];
}

/** Events kept for resending while the control plane refuses or is away; beyond, the oldest are dropped (counted). */
const MAX_OUTBOX = 10_000;

/** The last thing a device did, for progress and summaries: a lifecycle phase, or where it stands otherwise. */
export type DeviceStage = LifecyclePhase | "new" | "enrolled" | "enroll_failed" | "offline";

/**
 * One virtual node: its own identity (node id, credential), its current
 * release, boot epoch, WAL generation and event seq. It enrolls with its own
 * single-use token, heartbeats, polls `GET /v1/releases/latest` with its ETag
 * and the real poller's timing, verifies a candidate's statement itself,
 * simulates the activation, acks every phase and sends the matching events,
 * and a trickle of decisions and tool results while a release runs.
 */
export class VirtualDevice {
  readonly cfg: DeviceConfig;
  readonly #traffic: Traffic;
  readonly #log: EventLog;
  #client: CpClient;
  running: Running | null = null;
  stage: DeviceStage = "new";
  /** The release the last successful poll named (null: none published). */
  latest: Release | null = null;
  readonly rejected = new Set<string>();
  hungOn: string | null = null;
  updated = false;
  #etag: string | undefined;
  #failures = 0;
  #lastPolledKey: string | undefined;
  #nextHeartbeat = 0;
  #nextFlush = 0;
  /** The release the last successful heartbeat named. */
  #reported: string | null = null;
  #outbox: IngestEvent[] = [];
  lastInternalError: string | null = null;
  stats = { internal_errors: 0, polls: 0, acks: 0, ack_failures: 0, heartbeats: 0, heartbeat_failures: 0, events_sent: 0, events_inserted: 0, events_dropped: 0 };

  constructor(cfg: DeviceConfig, operator: CpClient, traffic: Traffic) {
    this.cfg = cfg;
    this.#client = operator;
    this.#traffic = traffic;
    this.#log = new EventLog(cfg.nodeId, cfg.walGeneration);
  }

  get bootEpoch(): number {
    return 0; // as a real node until the edge daemon counts boots
  }

  get pending(): number {
    return this.#outbox.length;
  }

  /** Spends the device's own enrollment token; from then on the device authenticates with its credential. */
  async enroll(enrollmentToken: string, labels: Record<string, string>): Promise<boolean> {
    try {
      const r = await this.#traffic.call("enroll", () => this.#client.enroll(enrollmentToken, { node_id: this.cfg.nodeId, labels }));
      this.#client = this.#client.withToken(r.credential);
      this.stage = "enrolled";
      return true;
    } catch {
      this.stage = "enroll_failed";
      return false;
    }
  }

  /** Ticks until `signal` aborts (or, for an `offline` device, after its first tick). */
  async run(signal: AbortSignal, sleep: (ms: number, signal: AbortSignal) => Promise<void>): Promise<void> {
    if (this.stage === "enroll_failed") return;
    // The first poll is spread over one interval too: a fleet started at once does not poll at once.
    await sleep(Math.floor(this.cfg.random() * this.cfg.pollIntervalMs), signal);
    while (!signal.aborted) {
      // In-flight requests are not cancelled when the run stops (a cancelled request would count
      // as a transport error); they finish within the client's deadline.
      const delay = await this.tick().catch((e: unknown) => {
        // A bug or an unexpected throw ends nothing but this round: counted, shown in the summary.
        this.stats.internal_errors += 1;
        this.lastInternalError = e instanceof Error ? e.message.slice(0, 200) : String(e).slice(0, 200);
        return this.cfg.pollIntervalMs;
      });
      if (this.cfg.fault === "offline") {
        this.stage = "offline";
        return;
      }
      await sleep(delay, signal);
    }
  }

  /** One round: heartbeat when due, poll, act on a candidate, tool calls, send events. Returns the delay to the next. */
  async tick(signal?: AbortSignal): Promise<number> {
    await this.#heartbeatIfDue(signal);
    const delay = await this.#poll(signal);
    if (this.running !== null) this.#toolCalls();
    // Events go out in batches, as a node's exporter sends them: at most once per eventFlushMs.
    if (Date.now() >= this.#nextFlush) {
      this.#nextFlush = Date.now() + this.cfg.eventFlushMs;
      await this.flush(signal);
    }
    return delay;
  }

  /**
   * True when this device has done all it will do about `releaseId`. Events
   * still queued do not count: a running device queues tool calls every
   * round, and the run flushes every outbox once it stops.
   */
  settledOn(releaseId: string): boolean {
    if (this.stage === "enroll_failed" || this.stage === "offline") return true;
    // The control plane must also have heard what runs (the heartbeat after an activation).
    if (this.latest?.release_id !== releaseId || this.#reported !== (this.running?.release_id ?? null)) return false;
    return !this.#isCandidate(this.latest) || this.rejected.has(releaseId) || this.hungOn === releaseId;
  }

  async #poll(signal?: AbortSignal): Promise<number> {
    this.stats.polls += 1;
    try {
      const r = await this.#traffic.call("latestRelease", () => this.#client.latestRelease(this.cfg.channel, this.#etag, signal ? { signal } : {}));
      if (r.status === "release") {
        this.#etag = r.etag;
        this.latest = r.release;
      } else if (r.status === "none") {
        this.#etag = undefined;
        this.latest = null;
      }
    } catch (e) {
      this.#failures += 1;
      const retryAfter = e instanceof CpClientError ? (e.retryAfterMs ?? undefined) : undefined;
      return failedPollDelay(this.#failures, pollBackoffCap(this.cfg.pollIntervalMs), this.cfg.random, retryAfter);
    }
    this.#failures = 0;
    const r = this.latest;
    const key = r?.release_id ?? "none";
    if (key !== this.#lastPolledKey && r !== null) await this.#phase("polled", { ...facts(r), extra: { outcome: "release", channel: this.cfg.channel, unchanged_polls: 0 } }, signal);
    this.#lastPolledKey = key;
    if (r !== null && this.#isCandidate(r) && !this.rejected.has(r.release_id) && this.hungOn !== r.release_id) await this.#attempt(r, signal);
    return steadyPollDelay(this.cfg.pollIntervalMs, this.cfg.random);
  }

  /** The device's fault when it deals with `releaseId` (null: none, or not with that release). */
  faultWith(releaseId: string): FaultKind | null {
    const scope = this.cfg.faultReleases;
    return scope === undefined || scope.includes(releaseId) ? this.cfg.fault : null;
  }

  /** The real poller's rule: another release than the one running, with a higher sequence. */
  #isCandidate(r: Release): boolean {
    return r.release_id !== this.running?.release_id && r.sequence > (this.running?.sequence ?? 0);
  }

  async #attempt(r: Release, signal?: AbortSignal): Promise<void> {
    // A release named after a hung one: the device gave up on the hung attempt (a watchdog restart).
    this.hungOn = null;
    await this.#phase("candidate_detected", facts(r), signal);
    await this.#phase("verify_started", facts(r), signal);
    const fault = this.faultWith(r.release_id);
    const v = verifyRelease(r, this.cfg.trust, this.cfg.channel, this.running?.sequence ?? 0, fault === "corrupt", new Date());
    if (!v.ok) {
      this.rejected.add(r.release_id);
      await this.#phase("verify_failed", { ...facts(r), error_code: v.code, detail: v.detail.slice(0, 512), extra: { will_retry: false } }, signal);
      return;
    }
    const verified = { ...facts(r), sequence: v.sequence, lock_fingerprint: v.lock_fingerprint };
    await this.#phase("verify_passed", verified, signal);
    await this.#phase("activation_started", verified, signal);
    if (fault === "hang") {
      this.hungOn = r.release_id; // never acks again for this release
      return;
    }
    if (fault === "fail") {
      this.rejected.add(r.release_id);
      await this.#phase("activate_failed", { ...verified, error_code: "SIM_ACTIVATE_FAILED", detail: "simulated activation failure (fault: fail)", extra: { will_retry: false } }, signal);
      return;
    }
    this.updated = this.running !== null;
    this.running = { release_id: r.release_id, sequence: v.sequence, lock_fingerprint: v.lock_fingerprint };
    this.#nextHeartbeat = 0; // tell the control plane now
    await this.#phase("activated", { ...verified, extra: { changed: true, statement_digest: v.statement_digest } }, signal);
  }

  /** The event (in the outbox, sent with the tick's batch) and the ack, as the real LifecycleReporter: ack failures are counted, not retried. */
  async #phase(phase: LifecyclePhase, f: PhaseFacts, signal?: AbortSignal): Promise<void> {
    const at = isoTime(systemClock);
    this.stage = phase;
    this.#queue([this.#log.event(LIFECYCLE_EVENT_TYPE, at, lifecycleBody(this.cfg.nodeId, phase, at, f), { release_id: f.release_id, lock_fingerprint: f.lock_fingerprint })]);
    const detail = [f.error_code, f.detail].filter((s) => s !== undefined && s !== "").join(": ").slice(0, 1024);
    try {
      await this.#traffic.call("ack", () => this.#client.ack(this.cfg.nodeId, { release_id: f.release_id, phase, lock_fingerprint: f.lock_fingerprint, detail, at }, signal ? { signal } : {}));
      this.stats.acks += 1;
    } catch {
      this.stats.ack_failures += 1;
    }
  }

  #toolCalls(): void {
    const run = this.running;
    if (run === null) return;
    const b = this.cfg.behaviour;
    const deny = this.faultWith(run.release_id) === "misbehave" && this.updated ? b.misbehaveDenyRate : b.denyRate;
    const at = isoTime(systemClock);
    // Decisions and tool results name the release the node runs, as the real exporter lifts them (docs/control-plane.md, "Event shapes"):
    // behaviour gates attribute them to the cohort by it.
    const names = { release_id: run.release_id, lock_fingerprint: run.lock_fingerprint };
    for (let i = 0; i < b.callsPerPoll; i++) {
      for (const body of toolCall(this.cfg.nodeId, at, `fleetsim@${run.sequence} (${run.lock_fingerprint})`, this.cfg.random, { deny, toolError: b.toolErrorRate }, names)) {
        this.#queue([this.#log.event(String(body.type), at, body, names)]);
      }
    }
  }

  #queue(events: IngestEvent[]): void {
    this.#outbox.push(...events);
    const over = this.#outbox.length - MAX_OUTBOX;
    if (over > 0) {
      this.#outbox.splice(0, over);
      this.stats.events_dropped += over;
    }
  }

  /** Sends the outbox in batches; what is refused or gets no answer stays for the next tick (ingest dedups on event_id). */
  async flush(signal?: AbortSignal): Promise<void> {
    while (this.#outbox.length > 0) {
      const batch = this.#outbox.slice(0, MAX_EVENTS_PER_BATCH);
      try {
        const r = await this.#traffic.call("ingestEvents", () => this.#client.ingestEvents({ events: batch }, signal ? { signal } : {}));
        this.stats.events_sent += batch.length;
        this.stats.events_inserted += r.inserted;
        this.#outbox.splice(0, batch.length);
      } catch {
        return;
      }
    }
  }

  async #heartbeatIfDue(signal?: AbortSignal): Promise<void> {
    const now = Date.now();
    if (now < this.#nextHeartbeat) return;
    this.#nextHeartbeat = now + this.cfg.heartbeatMs;
    const run = this.running;
    try {
      await this.#traffic.call("heartbeat", () => this.#client.heartbeat(this.cfg.nodeId, {
        release_id: run?.release_id ?? null, activation_sequence: run?.sequence ?? null, lock_fingerprint: run?.lock_fingerprint ?? null,
        boot_epoch: this.bootEpoch, wal_generation: this.cfg.walGeneration, runtime_version: `${RUNTIME_VERSION}+fleetsim`.slice(0, 64),
      }, signal ? { signal } : {}));
      this.stats.heartbeats += 1;
      this.#reported = run?.release_id ?? null;
    } catch {
      this.stats.heartbeat_failures += 1;
    }
  }
}

function facts(r: Release): PhaseFacts {
  return { release_id: r.release_id, sequence: r.sequence, lock_fingerprint: r.lock_fingerprint };
}

