import { expect, it } from "vitest";
import { plan } from "../../../test/helpers/rollout-fixtures.js";
import { clonePlan } from "./core.js";

it("clonePlan copies deeply: changing the copy's nodes, stages, gates, selector or late joiners leaves the original as it was", () => {
  const original = plan();
  const before = JSON.stringify(original);
  const copy = clonePlan(original);
  expect(copy).toEqual(original);
  const node = copy.nodes[0];
  const stage = copy.stages[0];
  if (node === undefined || stage === undefined) throw new Error("fixture plan has no node or stage");
  node.state = "failed";
  node.detail = "changed";
  stage.phase = "passed";
  stage.last_gates.push({ kind: "manual", status: "passed", detail: "changed" } as never);
  stage.gates.push({ kind: "manual" });
  copy.ignored_late_joiners.push("late");
  if (copy.selector !== null) copy.selector["extra"] = "x";
  copy.nodes.pop();
  expect(JSON.stringify(original)).toBe(before);
});
