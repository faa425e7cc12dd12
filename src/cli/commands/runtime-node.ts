import { InvalidArgumentError } from "commander";
import type { Command } from "commander";
import { readInputFile } from "../../lib/index.js";
import { readNodeState, readTrustRoot, setTrustRoot } from "../../node/index.js";
import type { KeyRotationRecord, NodeState, TrustRoot } from "../../node/index.js";
import { activateRelease } from "../../runtime/index.js";
import type { ActivationResult } from "../../runtime/index.js";
import { parseReference } from "../../oci/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";
import { repositoryOptions } from "../common.js";
import type { RegistryFlags } from "../common.js";
import { terminalSafe } from "../../lib/index.js";

// The node-side release commands: `runtime activate` and `runtime trust set|show` (the rest of `runtime` is in runtime.ts).

interface TrustSetFlags {
  stateRoot: string;
  key?: string[];
  threshold?: number;
  channel?: string;
  repository?: string;
  resetFloor?: boolean;
  json?: boolean;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!/^[0-9]{1,4}$/.test(v) || n < 1) throw new InvalidArgumentError("expected a positive integer");
  return n;
}

const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** The trust root and the floor it guards, as `trust show` and `trust set` print them. */
interface TrustView {
  keys: string[];
  threshold: number;
  channel: string;
  repository: string;
  updated_at: string;
  floor: { highest_sequence: number; statement: string | null; newest_issued_at: string | null };
  key_rotations: KeyRotationRecord[];
}

function trustView(t: TrustRoot, s: NodeState): TrustView {
  return {
    keys: t.keys.map((k) => k.keyId), threshold: t.threshold, channel: t.channel, repository: t.repository, updated_at: t.updated_at,
    floor: { highest_sequence: s.highest_sequence, statement: s.highest_statement_digest ?? null, newest_issued_at: s.newest_issued_at ?? null },
    key_rotations: s.key_rotations,
  };
}

function trustText(v: TrustView, rotation?: KeyRotationRecord): string {
  const f = v.floor;
  return [
    `trusted keys (${v.threshold} of ${v.keys.length} must sign):`,
    ...v.keys.map((k) => `  ${k}`),
    `channel ${v.channel}, repository ${v.repository}`,
    `sequence floor: ${f.highest_sequence}${f.statement ? ` (${f.statement}, issued ${f.newest_issued_at ?? "?"})` : ""}`,
    ...(rotation ? [`key set changed: sequence floor ${rotation.floor_reset ? `reset (was ${rotation.previous_sequence})` : "kept; pass --reset-floor to reset it"}`] : []),
  ].join("\n");
}

/** `runtime trust set|show`: the node's trust root, set only locally by the operator. */
export function registerRuntimeTrust(runtime: Command): void {
  const trust = runtime.command("trust").description("the node's trust root: release keys, threshold, channel and repository that `runtime activate` accepts");

  trust.command("set")
    .description("set the trusted release keys (replacing the set when --key is given), threshold, channel and repository; omitted values are kept. A key set with no key this node ever trusted resets the sequence floor (fast-forward recovery); --reset-floor resets it anyway")
    .requiredOption("--state-root <dir>", "the node's persistent state root")
    .option("--key <file>", "trusted release public key (SPKI PEM); repeat for several", collect)
    .option("--threshold <n>", "how many distinct trusted keys must sign a release statement (default 1; kept when omitted, and required when --key gives fewer keys than the current threshold: it is never lowered silently)", positiveInt)
    .option("--channel <name>", "release channel this node follows (default stable)")
    .option("--repository <name>", "repository this node follows, as releases name it (host/path); required the first time")
    .option("--reset-floor", "reset the sequence floor although the key set keeps (or brings back) a key trusted before (operator-only recovery; see docs/security.md)")
    .option("--json", "machine-readable output")
    .action(action(async (flags: TrustSetFlags) => {
      const keys = flags.key ? await Promise.all(flags.key.map(async (k) => ({ pem: (await readInputFile(k, "public key")).toString("utf8"), source: k }))) : undefined;
      const r = await setTrustRoot(flags.stateRoot, {
        ...(keys ? { keys } : {}),
        ...(flags.threshold !== undefined ? { threshold: flags.threshold } : {}),
        ...(flags.channel !== undefined ? { channel: flags.channel } : {}),
        ...(flags.repository !== undefined ? { repository: flags.repository } : {}),
        ...(flags.resetFloor ? { resetFloor: true } : {}),
      });
      emit({ ok: true, trust: trustView(r.trust, r.state), rotation: r.rotation ?? null }, flags, (x) => `trust set: OK\n${trustText(x.trust, x.rotation ?? undefined)}`);
    }));

  trust.command("show")
    .description("show the trust root and the sequence floor it guards")
    .requiredOption("--state-root <dir>", "the node's persistent state root")
    .option("--json", "machine-readable output")
    .action(action(async (flags: { stateRoot: string; json?: boolean }) => {
      const t = await readTrustRoot(flags.stateRoot);
      const s = await readNodeState(flags.stateRoot);
      emit({ ok: true, configured: t !== undefined, trust: t ? trustView(t, s) : null }, flags,
        (x) => (x.trust ? trustText(x.trust) : "no trust root: `runtime activate` refuses every release until `autonomy runtime trust set` names the release keys"));
    }));
}

function activateText(r: ActivationResult): string {
  const a = r.activation;
  const v = r.verification;
  return [
    `${r.changed ? "activated" : "already active"}: ${a.ref}`,
    `sequence ${a.sequence} (${a.channel}), statement ${a.statement_digest}, expires ${a.expires_at}`,
    `policy ${r.policyRef}`,
    ...v.steps.map((s) => `  ✓ ${s.step}: ${terminalSafe(s.detail)}`),
    ...(v.skipped.length > 0 ? ["skipped statement candidates (not trusted):", ...v.skipped.map((s) => `  - ${terminalSafe(s.candidate)} (${terminalSafe(s.source)}): ${terminalSafe(s.reason)}`)] : []),
    ...(v.ignored.length > 0 ? ["ignored attachments (not named by the statement):", ...v.ignored.map((i) => `  - ${terminalSafe(i.artifactType)} ${terminalSafe(i.blob ?? i.manifest)}: ${terminalSafe(i.reason)}`)] : []),
  ].join("\n");
}

/** `runtime activate`: verified against the node's trust root only (no key on the command line can widen it). */
export function registerRuntimeActivate(runtime: Command): void {
  runtime.command("activate <ref>")
    .description("pull a release, verify its signed release statement against the node's trust root (`runtime trust set`), apply the node's rules (sequence, expiry, equivocation) and activate exactly the lock and bundle it names, with one atomic commit")
    .requiredOption("--state-root <dir>", "the node's persistent state root")
    .option("--plain-http", "talk HTTP to the registry (loopback test registries)")
    .option("--json", "machine-readable output")
    .action(action(async (refIn: string, flags: RegistryFlags & { stateRoot: string }) => {
      const r = await activateRelease({ ref: parseReference(refIn), stateRoot: flags.stateRoot, repositoryOptions: repositoryOptions(flags) });
      const v = r.verification;
      emit({ ok: true, changed: r.changed, activation: r.activation, policy_ref: r.policyRef, steps: v.steps, skipped: v.skipped, ignored: v.ignored }, flags, () => activateText(r));
    }));
}
