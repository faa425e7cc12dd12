import { readFileSync } from "node:fs";
import type { PolicyFile } from "../../src/policy/index.js";

/** The example policy directory shipped with the product (echo_allow permits tool.echo, shell_deny forbids tool.shell). */
export const EXAMPLE_POLICY_DIR = new URL("../../examples/policies", import.meta.url).pathname;

/** The example policies as files, ready for a compiler. */
export const EXAMPLE_POLICY_FILES: PolicyFile[] = ["echo_allow.cedar", "shell_deny.cedar"].map((name) => ({
  name,
  text: readFileSync(new URL(`../../examples/policies/${name}`, import.meta.url), "utf8"),
}));
