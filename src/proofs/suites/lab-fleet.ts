/**
 * The virtual fleet of the recovery suites: src/fleetsim's VirtualDevice
 * (real HTTP clients, each with its own node credential, verifying every
 * statement itself), driven here rather than by `runFleet` because the
 * suites need what a fleet run hides: each device's credential (to read its
 * assignment back through the API), its fault set per release, pausing the
 * whole fleet while plans are created, and repairing a device (the operator
 * fixed what hung it, and it restarted).
 */
import { CpClient } from "../../cpapi/index.js";
import { Traffic, VirtualDevice } from "../../fleetsim/index.js";
import type { FaultKind, FleetTrust } from "../../fleetsim/index.js";
import { DEFAULT_BEHAVIOUR } from "../../fleetsim/index.js";
import { seededRng } from "../../lib/index.js";
import { LAB_CHANNEL } from "./lab-releases.js";

export interface LabFleetOptions {
  url: string;
  ownerToken: string;
  /** Node ids are `<prefix>-NNNN`. */
  prefix: string;
  count: number;
  labels: Record<string, string>;
  trust: FleetTrust;
  seed: number;
  pollIntervalMs: number;
  /** How often a device sends its queued events (behaviour gates read them). */
  eventFlushMs?: number;
  /** Requests in flight across the fleet at most. */
  maxInflight?: number;
}

export interface LabDevice {
  nodeId: string;
  device: VirtualDevice;
  /** The device's own credential: reads its assignment (GET /v1/releases/latest as the node). */
  client: CpClient;
}

/** The failure backoff cap in poll intervals (the real poller: 5 min over a 30 s interval). */
const BACKOFF_CAP_INTERVALS = 10;

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs before a device sends an ack (and may, e.g., kill the control plane first, so that ack is lost for real). */
export type BeforeAck = (nodeId: string, phase: string, releaseId: string) => Promise<void>;

/**
 * A device's own client, with a hook in front of its acks: a suite can stop
 * the control plane at an exact point of a device's activation (between two
 * of its acks). The request itself is untouched and goes out as it would.
 */
class DeviceClient extends CpClient {
  constructor(url: string, credential: string, private readonly fleet: { beforeAck: BeforeAck | null }) {
    super({ baseUrl: url, token: credential });
  }

  override async ack(nodeId: string, req: Parameters<CpClient["ack"]>[1], o?: Parameters<CpClient["ack"]>[2]): Promise<void> {
    await this.fleet.beforeAck?.(nodeId, req.phase, req.release_id);
    return super.ack(nodeId, req, o);
  }
}

export class LabFleet {
  readonly devices: LabDevice[];
  readonly traffic: Traffic;
  readonly #poll: number;
  #paused = false;
  #stopped = false;
  readonly #busy: boolean[];
  #loops: Promise<void>[] = [];
  readonly #wake = new Set<() => void>();
  /** The devices' clients read `beforeAck` ({@link BeforeAck}; null: none) from here. */
  readonly hooks: { beforeAck: BeforeAck | null };
  /** Rounds that threw (a bug in a device, never a refused or failed request: those are the device's business). */
  internalErrors = 0;
  lastInternalError = "";

  private constructor(devices: LabDevice[], traffic: Traffic, pollIntervalMs: number, hooks: { beforeAck: BeforeAck | null }) {
    this.devices = devices;
    this.hooks = hooks;
    this.traffic = traffic;
    this.#poll = pollIntervalMs;
    this.#busy = devices.map(() => false);
  }

  /** Makes one pinned single-use enrollment token per device, enrolls each with its own, and builds the devices (not yet running). */
  static async enroll(o: LabFleetOptions): Promise<LabFleet> {
    const traffic = new Traffic(o.maxInflight ?? 32);
    const operator = new CpClient({ baseUrl: o.url, token: o.ownerToken });
    const hooks: { beforeAck: BeforeAck | null } = { beforeAck: null };
    const devices = await Promise.all(Array.from({ length: o.count }, async (_, i): Promise<LabDevice> => {
      const nodeId = `${o.prefix}-${String(i).padStart(4, "0")}`;
      const et = await traffic.call("createEnrollmentToken", () => operator.createEnrollmentToken({ node_id: nodeId, labels: o.labels, ttl_seconds: 3600 }));
      const { credential } = await traffic.call("enroll", () => operator.enroll(et.token, { node_id: nodeId, labels: o.labels }));
      const client = new DeviceClient(o.url, credential, hooks);
      // Each device's own PRNG from the seed and its index (as runFleet): its jitter and tool calls replay.
      const random = seededRng((o.seed ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
      const walGeneration = Array.from({ length: 4 }, () => Math.floor(random() * 2 ** 32).toString(16).padStart(8, "0")).join("");
      const device = new VirtualDevice({
        nodeId, fault: null, channel: LAB_CHANNEL, pollIntervalMs: o.pollIntervalMs, heartbeatMs: o.pollIntervalMs,
        eventFlushMs: o.eventFlushMs ?? 1000, trust: o.trust, behaviour: { ...DEFAULT_BEHAVIOUR }, random, walGeneration,
      }, client, traffic);
      return { nodeId, device, client };
    }));
    return new LabFleet(devices, traffic, o.pollIntervalMs, hooks);
  }

  start(): void {
    this.#loops = this.devices.map((d, i) => this.#loop(d, i));
  }

  async #loop(d: LabDevice, i: number): Promise<void> {
    await this.#sleep(Math.floor(d.device.cfg.random() * this.#poll));
    while (!this.#stopped) {
      if (this.#paused) {
        await this.#sleep(20);
        continue;
      }
      this.#busy[i] = true;
      let next = this.#poll;
      try {
        next = await d.device.tick();
      } catch (e) {
        this.internalErrors += 1;
        this.lastInternalError = `${d.nodeId}: ${e instanceof Error ? e.message : String(e)}`.slice(0, 300);
      } finally {
        this.#busy[i] = false;
      }
      // The lab runs the poller's clock fast (0.4 s between polls, a real node's is 30 s), so the failure
      // backoff is capped on the same scale: 10 intervals, as the real cap (5 min) is 10 of a real node's.
      // Unscaled, a device unlucky enough to fail polls in several outages in a row slept for minutes.
      await this.#sleep(Math.min(next, BACKOFF_CAP_INTERVALS * this.#poll));
    }
  }

  /** Sleeps `ms`, or less when the fleet stops. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.#wake.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.#wake.add(done);
    });
  }

  /** No device starts a round after this resolves (rounds under way have finished). */
  async pause(): Promise<void> {
    this.#paused = true;
    while (this.#busy.some(Boolean)) await wait(10);
  }

  resume(): void {
    this.#paused = false;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const w of [...this.#wake]) w();
    await Promise.all(this.#loops);
    await Promise.all(this.devices.map((d) => d.device.flush()));
  }

  /** Gives `devices` a fault that shows only with `releases` (a bad release: the good one still works on them). */
  static setFault(devices: readonly LabDevice[], fault: FaultKind, releases: readonly string[]): void {
    for (const d of devices) {
      d.device.cfg.fault = fault;
      d.device.cfg.faultReleases = releases;
    }
  }

  /**
   * The operator fixed what was wrong with the device and it restarted: no
   * fault, and (as a restarted poller) it forgets the releases it refused or
   * hung on, so the release it is assigned is a candidate again.
   */
  static repair(d: LabDevice): void {
    d.device.cfg.fault = null;
    d.device.hungOn = null;
    d.device.rejected.clear();
  }

  /** The release each device runs by its own account. */
  runningOf(d: LabDevice): string | null {
    return d.device.running?.release_id ?? null;
  }

  /** Every device has settled on `releaseId` (activated and reported it, or refused or hung on it). */
  settledOn(releaseId: string, devices: readonly LabDevice[] = this.devices): boolean {
    return devices.every((d) => d.device.settledOn(releaseId));
  }
}

/** Polls `fn` every `everyMs` until it returns a value other than undefined, or throws after `timeoutMs` naming `what`. */
export async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined> | T | undefined, everyMs = 200, signal?: AbortSignal): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted === true) throw new Error(`aborted while waiting for ${what}`);
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await wait(everyMs);
  }
}

/** Splits `xs` into consecutive groups of the given sizes. */
export function groups<T>(xs: readonly T[], sizes: readonly number[]): T[][] {
  const out: T[][] = [];
  let at = 0;
  for (const n of sizes) {
    out.push(xs.slice(at, at + n));
    at += n;
  }
  return out;
}

/** A seeded Fisher–Yates shuffle (a copy). */
export function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const random = seededRng(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}
