import { describe, expect, it } from "vitest";
import { readFile } from "node:fs/promises";
import { LOCK_ERROR_CODES } from "../../src/lock/index.js";
import { SIGN_ERROR_CODES, VERIFICATION_ERROR_CODES } from "../../src/sign/index.js";
import { OCI_ERROR_CODES } from "../../src/oci/index.js";
import { POLICY_ERROR_CODES } from "../../src/policy/index.js";
import { RUNTIME_ERROR_CODES } from "../../src/runtime/index.js";
import { NODE_ERROR_CODES } from "../../src/node/index.js";
import { EXPORT_ERROR_CODES, WAL_ERROR_CODES, WAL_FAIL_HARD_CAUSES } from "../../src/telemetry/index.js";
import { HTTP_PROBLEM_CODES } from "../../src/lib/index.js";
import { ARCHIVE_ERROR_CODES } from "../../src/archive/index.js";
import { ORCHESTRATOR_ERROR_CODES } from "../../src/orchestrator/index.js";
import { PG_CLUSTER_ERROR_CODES } from "../../src/orchestrator/db/pg-cluster.js";
import { CP_CLIENT_ERROR_CODES } from "../../src/cpapi/index.js";
import { FLEETSIM_ERROR_CODES } from "../../src/fleetsim/index.js";
import { PROOF_ERROR_CODES } from "../../src/proofs/index.js";
import { EDGE_ERROR_CODES } from "../../src/edge/index.js";
import { PKI_ERROR_CODES, PKI_SHARED_CODES } from "../../src/pki/index.js";
// The rollout engine is not re-exported by src/orchestrator/index.ts yet (the server wires it next).
import { ROLLOUT_ERROR_CODES } from "../../src/orchestrator/rollouts/index.js";

// Keeps the error catalogue, the code lists and docs/errors.md in step (fastify's errors test, in spirit).
describe("docs/errors.md", () => {
  const all = ["USAGE", ...LOCK_ERROR_CODES, ...SIGN_ERROR_CODES, ...VERIFICATION_ERROR_CODES, ...OCI_ERROR_CODES, ...POLICY_ERROR_CODES, ...NODE_ERROR_CODES, ...RUNTIME_ERROR_CODES, ...WAL_FAIL_HARD_CAUSES, ...WAL_ERROR_CODES, ...EXPORT_ERROR_CODES, ...HTTP_PROBLEM_CODES, ...ARCHIVE_ERROR_CODES, ...CP_CLIENT_ERROR_CODES, ...ORCHESTRATOR_ERROR_CODES, ...PG_CLUSTER_ERROR_CODES, ...ROLLOUT_ERROR_CODES, ...FLEETSIM_ERROR_CODES, ...PROOF_ERROR_CODES, ...EDGE_ERROR_CODES,
    // A shared code (PKI_SHARED_CODES) is documented once, under the domain that also throws it (the edge daemon).
    ...PKI_ERROR_CODES.filter((c) => !PKI_SHARED_CODES.includes(c))];

  it("documents every error code exactly once", async () => {
    const doc = await readFile(new URL("../../docs/errors.md", import.meta.url), "utf8");
    for (const code of all) {
      const rows = doc.split("\n").filter((l) => l.startsWith(`| \`${code}\` |`));
      expect(rows, code).toHaveLength(1);
    }
  });

  it("lists no code the source does not have", async () => {
    const doc = await readFile(new URL("../../docs/errors.md", import.meta.url), "utf8");
    const documented = [...doc.matchAll(/^\| `([A-Z0-9_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual([...all].sort());
  });

  it("has no duplicate codes across domains", () => {
    expect(new Set(all).size).toBe(all.length);
  });
});
