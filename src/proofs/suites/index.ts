/**
 * The suite registry: `autonomy lab run <id>` looks suites up here. Adding a
 * suite is its import and one entry in SUITES.
 */
import { ProofError } from "../errors.js";
import { SUITE_IDS } from "../suite.js";
import type { Suite, SuiteId } from "../suite.js";
import { val07 } from "./val07.js";
import { val08 } from "./val08.js";
import { val09 } from "./val09.js";
import { val10 } from "./val10.js";
import { val11 } from "./val11.js";
import { val19 } from "./val19.js";
import { val20 } from "./val20.js";
import { val21 } from "./val21.js";
import { val22 } from "./val22.js";
import { val23 } from "./val23.js";
import { relayMult } from "./relay-mult.js";

export const SUITES: Readonly<Partial<Record<SuiteId, Suite>>> = {
  val07,
  val08,
  val09,
  val10,
  val11,
  val19,
  val20,
  val21,
  val22,
  val23,
  "relay-mult": relayMult,
};

export function isSuiteId(id: string): id is SuiteId {
  return (SUITE_IDS as readonly string[]).includes(id);
}

/** The suite `id`: PROOF_SUITE_UNKNOWN for a name that is no suite, PROOF_SUITE_MISSING for one not built yet. */
export function suiteOf(id: string): Suite {
  if (!isSuiteId(id)) throw new ProofError("PROOF_SUITE_UNKNOWN", `no proof suite named ${JSON.stringify(id)}`, { hint: `one of ${SUITE_IDS.join(", ")}, or all`, exitCode: 2 });
  const suite = SUITES[id];
  if (!suite) throw new ProofError("PROOF_SUITE_MISSING", `proof suite ${id} is not built yet`, { hint: `built: ${builtSuites().join(", ") || "none"}` });
  return suite;
}

/** The suites this build has, in id order (`lab run all`). */
export function builtSuites(): SuiteId[] {
  return SUITE_IDS.filter((id) => SUITES[id] !== undefined);
}
