import type { Command } from "commander";
import { EDGE_ERROR_CODES, EdgeError, PRECHECK_EXIT, loadEdgeConfig, runPrecheck, stageRuntime } from "../../edge/index.js";
import type { EdgeErrorCode, PrecheckCheck, PrecheckResult } from "../../edge/index.js";
import { ExitCodes, UsageError } from "../../lib/index.js";
import type { ExitCode } from "../../lib/index.js";
import { emit } from "../output.js";
import { action, usageExitCode } from "../run.js";

const EXIT: Readonly<Record<PrecheckResult["exitCode"], ExitCode>> = {
  [PRECHECK_EXIT.ok]: ExitCodes.ok,
  [PRECHECK_EXIT.config]: ExitCodes.failure,
  [PRECHECK_EXIT.stateRoot]: ExitCodes.usage,
  [PRECHECK_EXIT.certs]: ExitCodes.certificates,
  [PRECHECK_EXIT.reconstruction]: ExitCodes.walFailHard,
};

/** The --config the command or the program was given (it is a program-wide flag, as in the original). */
function configOf(cmd: Command): string {
  const config = cmd.optsWithGlobals<{ config?: string }>().config;
  if (config === undefined) throw new UsageError("no edge config given", "pass --config edge.toml");
  return config;
}

/** A failed check carries what to do, as `edged run` prints it (e.g. the `autonomy config migrate` hint of a version-0 config). */
type ShownCheck = PrecheckCheck & { hint?: string };

function withHints(checks: readonly PrecheckCheck[]): ShownCheck[] {
  return checks.map((c) => {
    const code = c.code as EdgeErrorCode | undefined;
    if (c.ok || code === undefined || !EDGE_ERROR_CODES.includes(code)) return c;
    return { ...c, hint: new EdgeError(code, c.detail).hint };
  });
}

function renderPrecheck(r: Omit<PrecheckResult, "checks"> & { checks: ShownCheck[] }): string {
  const lines = r.checks.map((c) => `${c.ok ? "ok  " : "FAIL"} ${c.name}: ${c.detail}${c.hint === undefined ? "" : `\n     hint: ${c.hint}`}`);
  const tail = r.exitCode === 0 ? `precheck: ${r.outcome} (boot epoch ${r.boot_epoch ?? "?"})` : `precheck: FAILED, exit ${r.exitCode}${r.exitCode === PRECHECK_EXIT.reconstruction ? " (edged must not start)" : ""}`;
  return [...lines, tail].join("\n");
}

/** `edged precheck` and `edged runtime stage`: the bootstrap commands (docs/bootstrap.md). */
export function registerEdgedBootstrap(program: Command): void {
  const precheck = program.command("precheck")
    .description("before edged starts: validate the config, the state root and the mTLS certificates, compare the OS fingerprint and reconstruct after an OS replacement.\nExit codes: 0 clean (match, first run or reconstructed), 1 config invalid, 2 state root invalid, 3 certificate or CA unreadable or expiring within 7 days, 5 reconstruction failed (edged must not start), 64 usage (no --config, an unknown flag).")
    .option("--json", "machine-readable output")
    .action(action(async (flags: { json?: boolean }, cmd: Command) => {
      const r = await runPrecheck({ configPath: configOf(cmd) });
      // exit_code as every other field is named; exitCode stays as a deprecated alias (read by existing scripts and tests).
      emit({ ok: r.exitCode === 0, ...r, exit_code: r.exitCode, checks: withHints(r.checks) }, flags, renderPrecheck);
      return { exitCode: EXIT[r.exitCode] };
    }));
  // 2 means "state root invalid" to systemd units and scripts: a usage error must not look like one.
  usageExitCode(precheck, ExitCodes.usageSysexits);
  const runtime = program.command("runtime").description("the runtime a reconstruction reinstalls");
  runtime.command("stage")
    .description("verify a runtime directory against its signed manifest (`autonomy runtime manifest sign`) and the node's trust root, then copy exactly the verified bytes into {state_root}/runtime/")
    .requiredOption("--from <dir>", "the runtime directory the manifest was signed over")
    .requiredOption("--manifest <file>", "the signed manifest (a DSSE envelope)")
    .option("--json", "machine-readable output")
    .action(action(async (flags: { from: string; manifest: string; json?: boolean }, cmd: Command) => {
      const cfg = await loadEdgeConfig(configOf(cmd));
      const r = await stageRuntime({ stateRoot: cfg.node.stateRoot, fromDir: flags.from, envelopeFile: flags.manifest });
      emit({ ok: true, ...r }, flags, (x) => `staged ${x.files.length} file(s) into ${x.dir} (manifest ${x.manifestDigest})`);
    }));
}
