import type { Command } from "commander";
import { migrateEdgeConfigFile } from "../../edge/index.js";
import type { MigrationChange, MigrationResult } from "../../edge/index.js";
import { action } from "../run.js";
import { emit } from "../output.js";

export function registerConfig(program: Command): void {
  const config = program.command("config").description("configuration files: upgrade an edge.toml to the current version");
  config.command("migrate")
    .description("upgrade an older edge.toml to the current config version; without --write only shows the changes (nothing is written)")
    .requiredOption("--config <file>", "the edge config to upgrade (edge.toml)")
    .option("--write", "replace the file, after writing a backup beside it (FILE.bak-<UTC time>)")
    .option("--json", "machine-readable output")
    .action(action(async (flags: { config: string; write?: boolean; json?: boolean }) => {
      const r = await migrateEdgeConfigFile(flags.config, { write: flags.write ?? false });
      // The resolved config is for programs; --json readers get the file's text and the changes.
      const { config: _resolved, ...shown } = r;
      emit({ ok: true, ...shown }, flags, () => render(r, flags.write ?? false));
    }));
}

function render(r: MigrationResult, write: boolean): string {
  if (r.current) return `${r.file} is already config version ${r.to_version}: nothing to do`;
  const head = r.written
    ? `${r.file}: migrated from version ${r.from_version} to ${r.to_version}; the original is in ${r.backup_file ?? "?"}`
    : `${r.file}: version ${r.from_version} → ${r.to_version} (dry run: nothing written${write ? "" : "; pass --write to apply"})`;
  return [
    head,
    "changes:",
    ...r.changes.map(changeLine),
    ...(r.comments_lost ? [`note: comments and layout are not kept by the rewrite${r.written ? `; ${r.backup_file ?? "the backup"} keeps them` : "; the backup --write makes keeps them"}`] : []),
    `--- ${r.file} (version ${r.from_version})`,
    `+++ ${r.file} (version ${r.to_version})`,
    ...r.diff,
  ].join("\n");
}

function changeLine(c: MigrationChange): string {
  const what = c.action === "moved" ? `${c.key} → ${c.to ?? "?"}`
    : c.action === "changed" ? `${c.key}: ${JSON.stringify(c.from_value)} → ${JSON.stringify(c.to_value)}`
    : c.action === "added" ? `${c.key} = ${JSON.stringify(c.to_value)}`
    : c.key;
  return `  ${c.action.padEnd(8)}${what}  (${c.why})`;
}
