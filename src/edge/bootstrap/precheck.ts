import { randomBytes } from "node:crypto";
import type { Stats } from "node:fs";
import { mkdir, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { AutonomyError, dateOf, errnoCode, messageOf, systemClock, withFileLock } from "../../lib/index.js";
import type { Clock } from "../../lib/index.js";
import { readNodeState, stateRootPaths } from "../../node/index.js";
import { EdgeError } from "../errors.js";
import { abandonUncommittedEvidence, readBootFile, readEvidence, refuseEpochRollback, writeBootFile } from "./boot-state.js";
import type { BootFile, EpochEvidence } from "./boot-state.js";
import { checkTransportCerts } from "./certs.js";
import { loadEdgeConfig } from "../config/load.js";
import type { EdgeConfig } from "../config/schema.js";
import { osFingerprint, readOsIdentity } from "./identity.js";
import type { OsIdentity } from "./identity.js";
import { reconstruct } from "./reconstruct.js";
import type { ReconstructionHooks } from "./reconstruct.js";

/** The original's exit codes: 0 clean, 1 config invalid, 2 state root invalid, 3 mTLS certificate/CA, 5 reconstruction failed (edged must not start). */
export const PRECHECK_EXIT = { ok: 0, config: 1, stateRoot: 2, certs: 3, reconstruction: 5 } as const;
export type PrecheckExitCode = (typeof PRECHECK_EXIT)[keyof typeof PRECHECK_EXIT];
export type PrecheckOutcome = "first_run" | "match" | "reconstructed" | "failed";

export interface PrecheckCheck {
  name: "config" | "state_root" | "certificates" | "os_fingerprint" | "reconstruction";
  ok: boolean;
  detail: string;
  /** The error code when it failed. */
  code?: string;
}

export interface PrecheckResult {
  exitCode: PrecheckExitCode;
  outcome: PrecheckOutcome;
  checks: PrecheckCheck[];
  boot_epoch?: number;
  fingerprint?: string;
  previous_fingerprint?: string;
  evidence?: EpochEvidence;
}

export interface PrecheckOptions {
  configPath: string;
  clock?: Clock;
  /** The instant certificate expiry is judged at (default: the clock, now). */
  now?: Date;
  hooks?: ReconstructionHooks;
}

class Failed extends Error {
  constructor(readonly exitCode: PrecheckExitCode) {
    super("precheck failed");
  }
}

/**
 * `edged precheck`: runs before edged starts (systemd: edged-precheck.service).
 * Validates the config, the state root and the mTLS identity, then compares
 * the OS fingerprint with the one recorded in the state root: none recorded
 * is a first run (epoch 0), equal is a match, different is an OS replacement
 * and runs the reconstruction. Never throws for a failed check: the result
 * carries the exit code and every check's detail.
 */
export async function runPrecheck(opts: PrecheckOptions): Promise<PrecheckResult> {
  const checks: PrecheckCheck[] = [];
  const clock = opts.clock ?? systemClock;
  const run = async <T>(name: PrecheckCheck["name"], exitCode: PrecheckExitCode, f: () => Promise<{ value: T; detail: string }>): Promise<T> => {
    try {
      const { value, detail } = await f();
      checks.push({ name, ok: true, detail });
      return value;
    } catch (e) {
      checks.push(failedCheck(name, e));
      throw new Failed(exitCode);
    }
  };
  try {
    const cfg = await run("config", PRECHECK_EXIT.config, async () => ({ value: await loadEdgeConfig(opts.configPath), detail: `${opts.configPath} is valid` }));
    const root = cfg.node.stateRoot;
    await run("state_root", PRECHECK_EXIT.stateRoot, async () => ({ value: await checkStateRoot(root), detail: `${root} is a writable directory, writable by its owner only, with a readable node state` }));
    const now = (opts.now ?? dateOf(clock)).getTime();
    await run("certificates", PRECHECK_EXIT.certs, async () => {
      await checkTransportCerts(cfg.transport, now, cfg.node.id);
      return { value: undefined, detail: `certificate, key and CA readable, matching, issued to ${cfg.node.id}, the key private to its owner, and valid for more than 7 days` };
    });
    return await withFileLock(stateRootPaths(root).bootstrapLock, () => compareAndReconstruct(cfg, checks, run, clock, opts.hooks), {
      onTimeout: (pid) => new EdgeError("STATE_ROOT_INVALID", `another edged precheck (process ${pid ?? "unknown"}) is running on ${root}`),
    }).catch((e: unknown) => {
      if (e instanceof Failed) throw e;
      checks.push(failedCheck("state_root", e));
      throw new Failed(PRECHECK_EXIT.stateRoot);
    });
  } catch (e) {
    if (e instanceof Failed) return { exitCode: e.exitCode, outcome: "failed", checks };
    throw e;
  }
}

function failedCheck(name: PrecheckCheck["name"], e: unknown): PrecheckCheck {
  // AutonomyError's code is generic over each domain's code union: a string either way.
  const code: string | undefined = e instanceof AutonomyError ? String(e.code) : undefined;
  return { name, ok: false, detail: messageOf(e), ...(code !== undefined ? { code } : {}) };
}

type Runner = <T>(name: PrecheckCheck["name"], exitCode: PrecheckExitCode, f: () => Promise<{ value: T; detail: string }>) => Promise<T>;

async function compareAndReconstruct(cfg: EdgeConfig, checks: PrecheckCheck[], run: Runner, clock: Clock, hooks: ReconstructionHooks | undefined): Promise<PrecheckResult> {
  const root = cfg.node.stateRoot;
  const previous = await run("state_root", PRECHECK_EXIT.stateRoot, async () => ({ value: await readBootFile(root), detail: "the recorded OS fingerprint is readable" }));
  if (previous !== undefined) {
    await run("state_root", PRECHECK_EXIT.stateRoot, async () => ({ value: await refuseEpochRollback(root, previous), detail: `boot epoch ${previous.boot_epoch} is not below any recorded epoch evidence` }));
  }
  // An unreadable identity leaves edged unable to tell whether the OS changed: it must not start.
  const { identity, fingerprint } = await run("os_fingerprint", PRECHECK_EXIT.reconstruction, async () => {
    const id = await readOsIdentity(cfg.bootstrap);
    const fp = await osFingerprint(id);
    return { value: { identity: id, fingerprint: fp }, detail: `OS fingerprint ${fp}` };
  });
  const at = dateOf(clock).toISOString();
  if (previous === undefined) {
    // A lost fingerprint file on a node that has reconstructed: resume at the evidence's epoch, never back at 0.
    const ev = await run("state_root", PRECHECK_EXIT.stateRoot, async () => ({ value: await readEvidence(root), detail: "the epoch evidence is readable" }));
    if (ev !== undefined) return resumeFromEvidence(cfg, checks, run, clock, hooks, ev, { identity, fingerprint });
    await run("os_fingerprint", PRECHECK_EXIT.stateRoot, async () => ({ value: await writeBootFile(root, { composite_hash: fingerprint, boot_epoch: 0, captured_at: at, identity: { ...identity } }), detail: "first run: fingerprint recorded, boot epoch 0" }));
    return { exitCode: PRECHECK_EXIT.ok, outcome: "first_run", checks, boot_epoch: 0, fingerprint };
  }
  if (previous.composite_hash === fingerprint) {
    const abandoned = await run("state_root", PRECHECK_EXIT.stateRoot, async () => ({ value: await abandonUncommittedEvidence(root, previous.boot_epoch), detail: "the epoch evidence is consistent with the boot epoch" }));
    const note = abandoned === undefined ? "" : `; the evidence of an uncommitted reconstruction (epoch ${abandoned}) was moved to epoch/abandoned`;
    checks.push({ name: "os_fingerprint", ok: true, detail: `matches the recorded fingerprint (boot epoch ${previous.boot_epoch})${note}` });
    return { exitCode: PRECHECK_EXIT.ok, outcome: "match", checks, boot_epoch: previous.boot_epoch, fingerprint };
  }
  return reconstructFrom(cfg, checks, run, clock, hooks, previous, { identity, fingerprint });
}

/**
 * bootstrap/os_fingerprint.json is gone but epoch/current holds the evidence
 * of epoch N: the node resumes at N (same OS as that evidence: the file is
 * rewritten, outcome match) or reconstructs to N + 1 (another OS).
 */
async function resumeFromEvidence(cfg: EdgeConfig, checks: PrecheckCheck[], run: Runner, clock: Clock, hooks: ReconstructionHooks | undefined, ev: EpochEvidence, now: { identity: OsIdentity; fingerprint: string }): Promise<PrecheckResult> {
  const root = cfg.node.stateRoot;
  const at = dateOf(clock).toISOString();
  if (ev.new_fingerprint === now.fingerprint) {
    await run("os_fingerprint", PRECHECK_EXIT.stateRoot, async () => ({
      value: await writeBootFile(root, { composite_hash: now.fingerprint, boot_epoch: ev.epoch, captured_at: at, identity: { ...now.identity } }),
      detail: `the fingerprint file was missing; epoch/current shows boot epoch ${ev.epoch} on this OS: fingerprint file rewritten, resuming at boot epoch ${ev.epoch}`,
    }));
    return { exitCode: PRECHECK_EXIT.ok, outcome: "match", checks, boot_epoch: ev.epoch, fingerprint: now.fingerprint };
  }
  checks.push({ name: "os_fingerprint", ok: true, detail: `the fingerprint file was missing; epoch/current shows boot epoch ${ev.epoch} on another OS: resuming from it` });
  return reconstructFrom(cfg, checks, run, clock, hooks, { composite_hash: ev.new_fingerprint, boot_epoch: ev.epoch, captured_at: ev.reconstructed_at, identity: {} }, now);
}

async function reconstructFrom(cfg: EdgeConfig, checks: PrecheckCheck[], run: Runner, clock: Clock, hooks: ReconstructionHooks | undefined, previous: BootFile, now: { identity: OsIdentity; fingerprint: string }): Promise<PrecheckResult> {
  const root = cfg.node.stateRoot;
  const { identity, fingerprint } = now;
  checks.push({ name: "os_fingerprint", ok: true, detail: `changed from ${previous.composite_hash}: the OS was replaced, reconstructing` });
  const evidence = await run("reconstruction", PRECHECK_EXIT.reconstruction, async () => {
    const ev = await reconstruct({ stateRoot: root, installDir: cfg.bootstrap.runtimeInstallDir, previous, identity, fingerprint, clock, ...(hooks ? { hooks } : {}) });
    const what = ev.installed ? `runtime reinstalled into ${ev.installed.install_dir} (${ev.installed.files.length} files)` : "no runtime install directory configured";
    return { value: ev, detail: `boot epoch ${ev.epoch}; ${what}; activation and policy slots intact` };
  });
  return { exitCode: PRECHECK_EXIT.ok, outcome: "reconstructed", checks, boot_epoch: evidence.epoch, fingerprint, previous_fingerprint: previous.composite_hash, evidence };
}

/**
 * Whoever can write the state root can lower the boot epoch, swap the staged
 * runtime's sequence or plant symlinks the reconstruction follows: it must be
 * writable by its owner only, and owned by us or by root.
 */
function refuseForeignAccess(root: string, st: Stats): void {
  if ((st.mode & 0o022) !== 0) {
    throw new EdgeError("STATE_ROOT_INVALID", `the state root ${root} is ${(st.mode & 0o020) !== 0 ? "group" : "world"}-writable (mode ${(st.mode & 0o777).toString(8).padStart(4, "0")}): any user who can write it could rewrite the boot epoch or the staged runtime`, { hint: `chmod go-w ${root}` });
  }
  const uid = process.geteuid?.();
  if (uid !== undefined && st.uid !== uid && st.uid !== 0) {
    throw new EdgeError("STATE_ROOT_INVALID", `the state root ${root} is owned by uid ${st.uid}, not by this user (uid ${uid}) or root: that user could rewrite the boot epoch or the staged runtime`, { hint: `chown the state root to the account edged runs as (chown -R <edged user> ${root})` });
  }
}

/** Missing, not a directory, group- or world-writable, owned by someone else, not writable (a probe file is created and removed), or its state.json unreadable: exit 2. */
async function checkStateRoot(root: string): Promise<void> {
  let st;
  try {
    st = await stat(root);
  } catch (e) {
    throw new EdgeError("STATE_ROOT_INVALID", `the state root ${root} does not exist (${errnoCode(e) ?? String(e)})`, { cause: e });
  }
  if (!st.isDirectory()) throw new EdgeError("STATE_ROOT_INVALID", `the state root ${root} is not a directory`);
  refuseForeignAccess(root, st);
  const probeDir = dirname(stateRootPaths(root).osFingerprint);
  try {
    // Not recursive: on a read-only mount Node's recursive mkdir reports ENOENT, hiding the EROFS.
    await mkdir(probeDir).catch((e: unknown) => {
      if (errnoCode(e) !== "EEXIST") throw e;
    });
    const probe = join(probeDir, `.write-probe-${randomBytes(6).toString("hex")}`);
    await writeFile(probe, "");
    await unlink(probe);
  } catch (e) {
    throw new EdgeError("STATE_ROOT_INVALID", `the state root ${root} is not writable (${errnoCode(e) ?? String(e)})`, { cause: e });
  }
  try {
    await readNodeState(root);
  } catch (e) {
    throw new EdgeError("STATE_ROOT_INVALID", `the node state in ${root} is unreadable: ${messageOf(e)}`, { cause: e });
  }
}
