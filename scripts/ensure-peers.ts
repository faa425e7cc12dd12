/**
 * First step of `npm test`: make sure every peer the tests need is here
 * (test/helpers/peers.ts lists them). Silent when they are. As root on Debian
 * it installs what is missing (`apt-get update` only then); anywhere else it
 * fails before anything runs, printing the exact install command. Capabilities
 * named in AUTONOMY_TEST_SKIP are neither checked nor installed: their tests
 * are skipped and listed at the end of the run.
 *
 *   node --import tsx scripts/ensure-peers.ts
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { CAPABILITIES, PEERS, SKIP_VAR, aptCanFix, debianPackages, forgetProbes, installCommand, missing, parseSkip, whatIsMissing } from "../test/helpers/peers.js";
import type { Capability } from "../test/helpers/peers.js";

export interface Machine {
  isRoot: boolean;
  /** {@link APT_GET} and /etc/debian_version present. */
  hasApt: boolean;
}

/**
 * apt-get by absolute path: this runs as root under npm, which puts node_modules/.bin
 * (anything a dependency installs) first on the PATH.
 */
export const APT_GET = "/usr/bin/apt-get";

export type Plan = { action: "none" } | { action: "install"; packages: string[]; missing: Capability[] } | { action: "fail"; message: string };

/** What to do about the `absent` capabilities (capability → what is missing) on `machine`. */
export function planPeers(absent: ReadonlyMap<Capability, string>, machine: Machine, alreadySkipped: readonly Capability[] = []): Plan {
  if (absent.size === 0) return { action: "none" };
  // What apt can provide is installed even when something else is missing too; the re-check after reports the rest.
  const installable = [...absent].filter(([c, problem]) => aptCanFix(c, problem)).map(([c]) => c);
  if (installable.length > 0 && machine.isRoot && machine.hasApt) {
    return { action: "install", packages: debianPackages(installable), missing: installable };
  }
  return { action: "fail", message: failMessage(absent, machine, alreadySkipped) };
}

/** Everything missing, how to install it, and how to skip it instead. */
export function failMessage(absent: ReadonlyMap<Capability, string>, machine: Machine, alreadySkipped: readonly Capability[] = []): string {
  const caps = [...absent.keys()];
  const lines = [`npm test: ${caps.length} thing(s) the tests need are missing:`];
  const byApt = caps.filter((c) => aptCanFix(c, absent.get(c) ?? ""));
  for (const [c, problem] of absent) lines.push(`  - ${whatIsMissing(c, problem)}${!byApt.includes(c) && PEERS[c].remedy ? `: ${PEERS[c].remedy}` : ""}`);
  const packages = debianPackages(byApt);
  if (packages.length > 0) {
    const why = !machine.hasApt ? "not a Debian system with apt-get" : !machine.isRoot ? "not root" : "apt-get did not provide them";
    lines.push("", `Not installed automatically (${why}). On Debian, install them with:`, `  ${installCommand(packages, machine.isRoot)}`);
    if (!machine.hasApt) lines.push(`Elsewhere, install the programs ${byApt.join(", ")} with your package manager.`);
  }
  lines.push("", `Or skip the tests that need them (they are listed at the end of the run):`, `  ${SKIP_VAR}=${[...alreadySkipped, ...caps].join(",")} npm test`);
  return lines.join("\n");
}

/** This machine; `exists` is replaceable so a test can tell the PATH is never consulted. */
export function currentMachine(exists: (path: string) => boolean = existsSync): Machine {
  return { isRoot: process.getuid?.() === 0, hasApt: exists(APT_GET) && exists("/etc/debian_version") };
}

function absentOf(caps: readonly Capability[]): Map<Capability, string> {
  const absent = new Map<Capability, string>();
  for (const c of caps) {
    const problem = missing(c);
    if (problem !== undefined) absent.set(c, problem);
  }
  return absent;
}

function apt(args: string[]): void {
  const r = spawnSync(APT_GET, args, { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
  if (r.status !== 0) throw new Error(`apt-get ${args.join(" ")} failed (${r.error?.message ?? `exit ${String(r.status)}`})`);
}

function main(): number {
  let skip: Capability[];
  try {
    skip = parseSkip();
  } catch (e) {
    console.error(`npm test: ${(e as Error).message}`);
    return 2;
  }
  const wanted = CAPABILITIES.filter((c) => !skip.includes(c));
  const machine = currentMachine();
  const plan = planPeers(absentOf(wanted), machine, skip);
  if (plan.action === "none") return 0;
  if (plan.action === "fail") {
    console.error(plan.message);
    return 1;
  }
  console.error(`npm test: installing ${plan.packages.join(" ")} (missing: ${plan.missing.join(", ")})`);
  try {
    apt(["update", "-qq"]);
    apt(["install", "-y", "-qq", "--no-install-recommends", ...plan.packages]);
  } catch (e) {
    console.error(`npm test: ${(e as Error).message}`);
  }
  forgetProbes();
  const still = absentOf(wanted);
  if (still.size === 0) return 0;
  console.error(failMessage(still, machine, skip)); // says "apt-get did not provide them"
  return 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) process.exitCode = main();
