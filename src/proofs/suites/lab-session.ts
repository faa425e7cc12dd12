/**
 * What every recovery suite starts from: an owner client of the control
 * plane under test, a release signer, a virtual fleet enrolled and running,
 * and a base release (sequence 1) that every device installed and reported.
 */
import { CpClient } from "../../cpapi/index.js";
import type { Release } from "../../cpapi/index.js";
import type { SuiteContext } from "../suite.js";
import { LabFleet, until } from "./lab-fleet.js";
import type { LabDevice } from "./lab-fleet.js";
import { LabSigner } from "./lab-releases.js";

export interface Lab {
  owner: CpClient;
  signer: LabSigner;
  fleet: LabFleet;
  base: Release;
  /** Stops the fleet (its queued events are sent first). */
  close(): Promise<void>;
}

export interface LabOptions {
  count: number;
  prefix: string;
  pollIntervalMs?: number;
}

/** The scheduler interval the recovery suites run `autonomy serve` with (stuck detection and starts every tick). */
export const SCHEDULER_ARGS = ["--scheduler-interval", "250ms"];

export async function openLab(ctx: SuiteContext, o: LabOptions): Promise<Lab> {
  const owner = new CpClient({ baseUrl: ctx.cp.url, token: ctx.cp.ownerToken });
  const signer = new LabSigner();
  const fleet = await LabFleet.enroll({
    url: ctx.cp.url, ownerToken: ctx.cp.ownerToken, prefix: o.prefix, count: o.count, labels: { lab: o.prefix },
    trust: signer.trust, seed: ctx.seed, pollIntervalMs: o.pollIntervalMs ?? 400,
  });
  const base = await signer.publish(owner, "base", 1);
  fleet.start();
  const close = (): Promise<void> => fleet.stop();
  try {
    await until(`${o.count} devices on the base release ${base.release_id}`, 120_000, () => (fleet.settledOn(base.release_id) ? true : undefined), 200, ctx.signal);
  } catch (e) {
    await close();
    throw e;
  }
  ctx.log(`${o.count} devices enrolled and on ${base.release_id}`);
  return { owner, signer, fleet, base, close };
}

export const idsOf = (ds: readonly LabDevice[]): string[] => ds.map((d) => d.nodeId);
