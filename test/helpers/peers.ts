/**
 * The programs and machine properties the tests need beyond Node.js ("peers"),
 * how to detect each, which Debian package provides it, and the one skip
 * convention: `AUTONOMY_TEST_SKIP=<capability>[,<capability>…]`.
 *
 * Used by `scripts/ensure-peers.ts` (the first step of `npm test`, which
 * installs what is missing) and by `needs()` in ./needs.ts (every conditional
 * test). No vitest import here: the script runs outside the test runner.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { pgClusterProblem } from "../../src/orchestrator/db/pg-cluster.js";

/** The environment variable that may name capabilities whose tests are skipped (and listed). */
export const SKIP_VAR = "AUTONOMY_TEST_SKIP";

export interface Peer {
  /** What needs it, for messages. */
  usedBy: string;
  /** undefined when present; otherwise what exactly is missing. */
  probe(): string | undefined;
  /** Debian packages that provide it; empty for a property of the machine apt cannot install. */
  debian: readonly string[];
  /** What to do when it is missing and apt cannot help. */
  remedy?: string;
  /**
   * Whether installing {@link debian} can fix this problem (default: yes). False when
   * the program is there but the wrong one comes first on the PATH: installing again
   * changes nothing, so ensure-peers would apt-get on every run and still fail.
   */
  aptFixes?: (problem: string) => boolean;
}

/** Where a program lives: PATH, then the sbin directories a non-login root shell may lack. */
export function findCommand(name: string, path = process.env.PATH ?? ""): string | undefined {
  const dirs = [...path.split(delimiter), "/usr/local/sbin", "/usr/sbin", "/sbin"].filter((d) => d !== "");
  for (const d of dirs) {
    try {
      accessSync(join(d, name), constants.X_OK);
      return join(d, name);
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

function commands(names: readonly string[], debian: readonly string[], usedBy: string): Peer {
  const probe = (): string | undefined => {
    const missing = names.filter((n) => findCommand(n) === undefined);
    return missing.length === 0 ? undefined : `${missing.join(", ")} not found on the PATH`;
  };
  return { usedBy, probe, debian };
}

const NON_GNU_TAR = "a non-GNU tar is first on PATH: ";
/** Where Debian's tar package puts GNU tar: a non-GNU tar there is one apt can replace. */
const DEBIAN_TAR = "/usr/bin/tar";

/** The tests spawn `tar` from the PATH, so the one first on the PATH must be GNU tar. */
function gnuTar(): string | undefined {
  const tar = findCommand("tar");
  if (!tar) return "tar not found on the PATH";
  const r = spawnSync(tar, ["--version"], { encoding: "utf8" });
  if (/GNU tar/.test(r.stdout ?? "")) return undefined;
  return `${NON_GNU_TAR}${tar} (\`tar --version\`: ${(r.stdout ?? "").split("\n")[0] ?? ""})`;
}

/** apt can provide a missing tar, or replace a non-GNU one at Debian's path; not one that shadows it earlier on the PATH. */
function aptFixesTar(problem: string): boolean {
  return !problem.startsWith(NON_GNU_TAR) || problem.startsWith(`${NON_GNU_TAR}${DEBIAN_TAR} `);
}

/** Debian's python3 (not a pyenv or venv one, which does not see apt packages) with securesystemslib. */
function securesystemslib(): string | undefined {
  const r = spawnSync("/usr/bin/python3", ["-c", "import securesystemslib.signer"], { encoding: "utf8" });
  if (r.status === 0) return undefined;
  return `/usr/bin/python3 cannot import securesystemslib.signer (${(r.error?.message ?? r.stderr ?? "").trim().split("\n").pop() ?? ""})`;
}

const CAP_SYS_ADMIN = 21n;

/** Root that may mount: uid 0 and, on Linux, CAP_SYS_ADMIN (an unprivileged container's root lacks it). */
function isRoot(): string | undefined {
  const uid = process.getuid?.();
  if (uid !== 0) return `not root (uid ${String(uid)})`;
  if (process.platform !== "linux") return undefined;
  let status = "";
  try {
    status = readFileSync("/proc/self/status", "utf8");
  } catch {
    return undefined; // no /proc: uid 0 is all we can know; mount itself will say more
  }
  const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (capEff === undefined || (BigInt(`0x${capEff}`) >> CAP_SYS_ADMIN) & 1n) return undefined;
  return "uid 0 but without CAP_SYS_ADMIN (an unprivileged container?), so mount and losetup are refused";
}

function loopDevices(): string | undefined {
  const losetup = findCommand("losetup");
  if (!losetup) return "losetup not found on the PATH";
  const r = spawnSync(losetup, ["-f"], { encoding: "utf8", timeout: 15_000 });
  if (r.status === 0) return undefined;
  return `\`losetup -f\` found no free loop device: ${(r.error?.message ?? r.stderr ?? `exit ${String(r.status)}`).trim()}`;
}

/** Every capability a test may need, by the name AUTONOMY_TEST_SKIP uses. */
const PEER_TABLE = {
  skopeo: commands(["skopeo"], ["skopeo"], "test/supplychain/interop-skopeo (reads and copies what we write)"),
  "docker-registry": commands(["docker-registry"], ["docker-registry"], "the registry tests (test/oci/registry-client, supplychain-registry, interop-skopeo)"),
  b3sum: commands(["b3sum"], ["b3sum"], "test/lock/lock-b3sum and interop-skopeo (reference BLAKE3)"),
  openssl: commands(["openssl"], ["openssl"], "test/sign/sign-openssl, interop-skopeo, the registry token server and the runtime's TLS listener (runtime-auth)"),
  git: commands(["git"], ["git"], "cloning and working on the repository"),
  strace: commands(["strace"], ["strace"], "the system-call test of `autonomy wal append` (seed 001 fsync order)"),
  gcc: commands(["gcc"], ["gcc", "libc6-dev"], "test/edge/power-loss-ledger (compiles the LD_PRELOAD power-loss shim under LMDB)"),
  python3: commands(["python3"], ["python3"], "scripts/wal_verify.py, the independent WAL verifier of the portability lab"),
  securesystemslib: {
    usedBy: "test/supplychain/statement-independent (Debian's securesystemslib verifies our DSSE release statements)",
    probe: securesystemslib,
    debian: ["python3-securesystemslib"],
  },
  "gnu-tar": {
    usedBy: "the policy bundle tests that read our archives with GNU tar",
    probe: gnuTar,
    debian: ["tar"],
    aptFixes: aptFixesTar,
    remedy: "the tests run `tar` from the PATH: put GNU tar's directory first on the PATH (or remove the other tar)",
  },
  "util-linux": commands(["mount", "umount", "losetup"], ["util-linux", "mount"], "test/telemetry/wal-disk-full (tmpfs) and the portability loop cells"),
  "mkfs.ext4": commands(["mkfs.ext4"], ["e2fsprogs"], "the ext4 portability cell"),
  "mkfs.xfs": commands(["mkfs.xfs"], ["xfsprogs"], "the xfs portability cell"),
  postgresql: {
    usedBy: "the control-plane store tests on PostgreSQL (test/helpers/databases.ts starts a throwaway cluster) and `autonomy lab … --db postgres`",
    // The same search as the product code: /usr/lib/postgresql/<major>/bin (no PATH symlink on a fresh machine), and the postgres user when root.
    probe: pgClusterProblem,
    debian: ["postgresql"],
  },
  systemd: commands(["systemd-analyze"], ["systemd"], "test/edge/systemd-units (`systemd-analyze verify` of the packaged units)"),
  procps: commands(["ps"], ["procps"], "test/runtime/runtime-upstream (no upstream child left behind)"),
  promtool: commands(["promtool"], ["prometheus"], "test/edge/edged-daemon (promtool check metrics on edged's /metrics scrape)"),
  root: { usedBy: "test/telemetry/wal-disk-full (mounts a tmpfs) and the portability loop cells (mkfs, losetup, mount)", probe: isRoot, debian: [], remedy: "run `npm test` as root, outside a container or in one started with --privileged" },
  "loop-devices": {
    usedBy: "the ext4 and xfs portability cells",
    probe: loopDevices,
    debian: [],
    remedy: "run on a machine with loop devices (a VM, or a container started with --privileged)",
  },
} as const satisfies Record<string, Peer>;

export type Capability = keyof typeof PEER_TABLE;
export const PEERS: Readonly<Record<Capability, Peer>> = PEER_TABLE;
export const CAPABILITIES = Object.keys(PEERS) as Capability[];

function isCapability(s: string): s is Capability {
  return Object.hasOwn(PEERS, s);
}

/** The capabilities AUTONOMY_TEST_SKIP names; an unknown name throws (a typo must not skip nothing silently). */
export function parseSkip(value: string | undefined = process.env[SKIP_VAR]): Capability[] {
  const names = (value ?? "").split(/[\s,]+/).filter((s) => s !== "");
  const unknown = names.filter((n) => !isCapability(n));
  if (unknown.length > 0) {
    throw new Error(`${SKIP_VAR} names ${unknown.map((u) => `"${u}"`).join(", ")}, which is not a capability; known: ${CAPABILITIES.join(", ")}`);
  }
  return [...new Set(names)] as Capability[];
}

const probed = new Map<Capability, string | undefined>();

/** What is missing of `cap` (cached per process: the machine does not change under a test run). */
export function missing(cap: Capability): string | undefined {
  if (!probed.has(cap)) probed.set(cap, PEERS[cap].probe());
  return probed.get(cap);
}

/** Forgets cached probes (after an install). */
export function forgetProbes(): void {
  probed.clear();
}

/** Whether installing the capability's Debian packages can fix `problem`. */
export function aptCanFix(cap: Capability, problem: string): boolean {
  const p: Peer = PEERS[cap];
  return p.debian.length > 0 && (p.aptFixes?.(problem) ?? true);
}

/** The Debian packages that provide `caps`, sorted and unique. */
export function debianPackages(caps: readonly Capability[]): string[] {
  return [...new Set(caps.flatMap((c) => PEERS[c].debian))].sort();
}

/** The exact command that installs `packages` on Debian, for root or (with sudo) for anyone else. */
export function installCommand(packages: readonly string[], asRoot: boolean): string {
  // `sudo env VAR=…` because sudo's env_reset may drop a plain `sudo VAR=…`.
  const [update, install] = asRoot ? ["apt-get", "DEBIAN_FRONTEND=noninteractive apt-get"] : ["sudo apt-get", "sudo env DEBIAN_FRONTEND=noninteractive apt-get"];
  return `${update} update && ${install} install -y --no-install-recommends ${packages.join(" ")}`;
}

/** One capability's problem, what needs it, and how to fix or skip it. */
export function describeMissing(cap: Capability, problem: string, asRoot = process.getuid?.() === 0): string {
  const p = PEERS[cap];
  const fix = aptCanFix(cap, problem) ? `install it: ${installCommand(p.debian, asRoot)}` : (p.remedy ?? "");
  return `${whatIsMissing(cap, problem)}; ${fix}; or skip what needs it with ${SKIP_VAR}=${cap} (the run lists what it skipped)`;
}

/** `cap: problem (needed by …)`, without the fix. */
export function whatIsMissing(cap: Capability, problem: string): string {
  return `${cap}: ${problem} (needed by ${PEERS[cap].usedBy})`;
}

/** Thrown by a test whose capability is missing and not named in AUTONOMY_TEST_SKIP. */
export class PeerMissingError extends Error {
  readonly code = "PEER_MISSING";
  constructor(readonly missing: readonly Capability[], message: string) {
    super(message);
    this.name = "PeerMissingError";
  }
}

/** Throws PEER_MISSING naming every missing capability of `caps` and how to install or skip each. */
export function assertPresent(caps: readonly Capability[]): void {
  const absent = caps.flatMap((c) => {
    const problem = missing(c);
    return problem === undefined ? [] : [{ c, problem }];
  });
  if (absent.length === 0) return;
  const lines = absent.map(({ c, problem }) => `  - ${describeMissing(c, problem)}`);
  throw new PeerMissingError(
    absent.map((a) => a.c),
    `PEER_MISSING: this test needs ${absent.map((a) => a.c).join(", ")}:\n${lines.join("\n")}\n(\`npm test\` as root on Debian installs missing packages itself.)`,
  );
}
