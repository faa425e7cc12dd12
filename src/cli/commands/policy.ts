import type { Command } from "commander";
import { AutonomyError, RUNTIME_VERSION, writeFileAtomic, readInputFile } from "../../lib/index.js";
import { buildBundle, compileCedar, isRuntimeCompatible, openBundle } from "../../policy/index.js";
import type { BundleManifest, PolicyFile } from "../../policy/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";

interface BuildFlags {
  output: string;
  name: string;
  version: string;
  runtimeVersion?: string;
  json?: boolean;
}

interface BuildResult {
  ok: true;
  path: string;
  digest: string;
  size: number;
  manifest: BundleManifest;
}

/** `policy build`: packs DIR's .cedar files into a deterministic bundle and writes it durably. */
async function policyBuild(dir: string, flags: BuildFlags): Promise<BuildResult> {
  const built = await buildBundle(dir, {
    name: flags.name,
    version: flags.version,
    ...(flags.runtimeVersion !== undefined ? { runtimeVersion: flags.runtimeVersion } : {}),
  });
  await writeFileAtomic(flags.output, built.bytes);
  return { ok: true, path: flags.output, digest: built.digest, size: built.bytes.length, manifest: built.manifest };
}

interface InspectResult {
  ok: true;
  path: string;
  digest: string;
  size: number;
  manifest: BundleManifest;
  files: { name: string; digest: string; bytes: number }[];
  runtime: { version: string; compatible: boolean };
  /** Whether the runtime's Cedar engine compiles the policies, as a node's load would. */
  cedar: { compiles: true; policies: number } | { compiles: false; error: string };
}

/** Compiles the files as a node's load would, reporting the result instead of throwing a policy error. */
function cedarCheck(files: PolicyFile[]): InspectResult["cedar"] {
  try {
    const engine = compileCedar(files);
    const policies = engine.policyCount;
    engine.dispose();
    return { compiles: true, policies };
  } catch (e) {
    if (e instanceof AutonomyError) return { compiles: false, error: e.message };
    throw e;
  }
}

/**
 * `policy inspect`: every integrity check of a load (limits, names, types,
 * digests, bundle_hash); compatibility with this runtime and whether Cedar
 * compiles the policies are reported, not enforced, so bundles built for other
 * runtimes (or by hand) can be examined.
 */
async function policyInspect(path: string): Promise<InspectResult> {
  const bundle = await openBundle(await readInputFile(path, "policy bundle"));
  return {
    ok: true,
    path,
    digest: bundle.digest,
    size: bundle.size,
    manifest: bundle.manifest,
    files: bundle.files.map((f) => ({ name: f.name, digest: bundle.manifest.files[f.name]!, bytes: Buffer.byteLength(f.text, "utf8") })),
    runtime: { version: RUNTIME_VERSION, compatible: isRuntimeCompatible(bundle.manifest, RUNTIME_VERSION) },
    cedar: cedarCheck(bundle.files),
  };
}

function manifestText(m: BundleManifest): string {
  const width = Math.max(...Object.keys(m.files).map((n) => n.length));
  return [
    `name: ${m.name}`,
    `version: ${m.policy_bundle_version}`,
    `required_runtime_version: ${m.required_runtime_version === "" ? '"" (any)' : m.required_runtime_version}`,
    `engine: ${m.engine}`,
    `created_at: ${m.created_at}`,
    `bundle_hash: ${m.bundle_hash}`,
    "files:",
    ...Object.entries(m.files).map(([n, d]) => `  ${n.padEnd(width)}  ${d}`),
  ].join("\n");
}

/**
 * Registers `policy build` and `policy inspect`, creating the `policy` command if
 * it does not exist yet (other modules add `test`, `load`, `status`). Returns it.
 *
 * `policy build --version` would otherwise be taken by the root's `--version`
 * (Commander parses program options anywhere on the line), so the root is set to
 * positional options: program options go before the subcommand, which is the
 * only place `autonomy -V/--version/--help` are used anyway.
 */
export function registerPolicy(program: Command): Command {
  program.enablePositionalOptions();
  const policy = program.commands.find((c) => c.name() === "policy") ??
    program.command("policy").description("build, inspect, test and load Cedar policy bundles");

  policy.command("build <dir>")
    .description("pack every .cedar file in DIR into a deterministic, digest-checked policy bundle (.tar.gz); every policy is compiled by the runtime's Cedar engine first (POLICY_COMPILE_FAILED names file:line:column)")
    .requiredOption("-o, --output <file>", "where to write the bundle (written durably: temp, fsync, rename)")
    .requiredOption("--name <name>", "bundle name (letters, digits, '.', '_', '-')")
    .requiredOption("--version <semver>", "bundle version (semver, e.g. 1.2.3)")
    .option("--runtime-version <range>", 'semver range the runtime must satisfy, e.g. ">=0.1.0 <1.0.0" (default: any)')
    .option("--json", "machine-readable output")
    .addHelpText("after", "\ncreated_at comes from SOURCE_DATE_EPOCH when it is set (reproducible builds), else the current time.")
    .action(action(async (dir: string, flags: BuildFlags) => {
      const r = await policyBuild(dir, flags);
      emit(r, flags, (x) => `policy build: OK\nwrote ${x.path} (${x.size} bytes)\ndigest: ${x.digest}\n${manifestText(x.manifest)}`);
    }));

  policy.command("inspect <bundle>")
    .description("verify a bundle's integrity (limits, names, digests, bundle_hash) and print its manifest, files, digest, runtime compatibility and whether its policies compile")
    .option("--json", "machine-readable output")
    .action(action(async (bundle: string, flags: { json?: boolean }) => {
      const r = await policyInspect(bundle);
      emit(r, flags, (x) =>
        `${x.path}: OK (${x.size} bytes)\ndigest: ${x.digest}\n${manifestText(x.manifest)}\n` +
        `runtime ${x.runtime.version}: ${x.runtime.compatible ? "compatible" : "NOT compatible (policy load would refuse it)"}\n` +
        `cedar: ${x.cedar.compiles ? `${x.cedar.policies} policies compile` : `does NOT compile (policy load would refuse it): ${x.cedar.error}`}`);
    }));

  return policy;
}
