import { describe, expect, it } from "vitest";
import { encodeFrame, encodeSafeSeq } from "./codec.js";
import { inspectWal } from "./verify.js";

describe("inspectWal", () => {
  it("inspects a WAL of 300 000 frames (no argument spreading that overflows the stack) and finds it clean", () => {
    const n = 300_000;
    const frames: Uint8Array[] = [];
    for (let seq = 1; seq <= n; seq++) frames.push(encodeFrame({ seq, event: {} }));
    const i = inspectWal(Buffer.concat(frames), encodeSafeSeq(n));
    expect(i.frames).toHaveLength(n);
    expect(i).toMatchObject({ fail_hard: null, max_seq: n, safe_seq: n, violations: [] });
  });
});
