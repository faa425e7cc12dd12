import { AutonomyError, ExitCodes } from "../lib/index.js";

/** Every code a {@link FleetSimError} can carry; docs/errors.md lists each. */
export const FLEETSIM_ERROR_CODES = ["FLEET_SPEC_INVALID", "FLEET_SERVER_NOT_LOOPBACK", "FLEET_SETUP_FAILED", "FLEET_TRANSPORT_ERRORS", "FLEET_DEVICE_ERRORS", "FLEET_NOT_CONVERGED"] as const;
export type FleetSimErrorCode = (typeof FLEETSIM_ERROR_CODES)[number];

const HINTS: Readonly<Record<FleetSimErrorCode, string>> = {
  FLEET_SPEC_INVALID: "check --devices, --faults (e.g. fail=5%,hang=2%), --labels k=v and the durations",
  FLEET_SERVER_NOT_LOOPBACK: "the simulator is a load generator: point it at a loopback control plane, or pass --allow-remote for a lab server you own",
  FLEET_SETUP_FAILED: "the operator token must have node:enroll (an owner token); check --server and --token",
  FLEET_TRANSPORT_ERRORS: "requests got no answer (refused, reset, timed out) or an off-contract one: lower --devices or --max-inflight, or check the server's logs",
  FLEET_DEVICE_ERRORS: "a device's round failed with an unexpected error (a bug in the simulator): the summary's internal_errors.last says which; please report it",
  FLEET_NOT_CONVERGED: "the fleet did not settle before --max-duration: is a release published on the channel? raise --max-duration, or look at the per-phase counts",
};

const USAGE: ReadonlySet<FleetSimErrorCode> = new Set(["FLEET_SPEC_INVALID", "FLEET_SERVER_NOT_LOOPBACK"]);

/** The fleet simulator's own failures (a device's simulated failures are acks, never errors). */
export class FleetSimError extends AutonomyError<FleetSimErrorCode> {
  constructor(code: FleetSimErrorCode, message: string, o: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, { hint: HINTS[code], exitCode: USAGE.has(code) ? ExitCodes.usage : ExitCodes.failure, ...o });
  }
}
