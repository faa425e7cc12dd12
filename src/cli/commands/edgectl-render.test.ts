import { describe, expect, it } from "vitest";
import type { BootStatusView } from "../../edge/index.js";
import { bandwidthText, bootText, durationText } from "./edgectl-render.js";

const FP = (c: string): string => `blake3:${c.repeat(64)}`;

describe("edgectl relay status: the boot lines", () => {
  it("before the first precheck, after a completed reconstruction, an abandoned one, and unreadable files", () => {
    const none: BootStatusView = { boot_epoch: null, os_fingerprint: null, captured_at: null, last_reconstruction: null, error: null };
    expect(bootText(none)).toEqual(["boot: no boot epoch recorded yet (edged precheck has not run on this state root)", "  last reconstruction: none"]);
    const done: BootStatusView = {
      boot_epoch: 1, os_fingerprint: FP("b"), captured_at: "2026-01-02T00:00:00Z", error: null,
      last_reconstruction: { outcome: "completed", epoch: 1, at: "2026-01-02T00:00:00Z", previous_fingerprint: FP("a"), new_fingerprint: FP("b"), runtime_manifest_digest: `sha256:${"e".repeat(64)}` },
    };
    expect(bootText(done)).toEqual([
      `boot: epoch 1  OS fingerprint ${FP("b")}  since 2026-01-02T00:00:00Z`,
      `  last reconstruction: completed at 2026-01-02T00:00:00Z, to epoch 1 (OS ${FP("a")} → ${FP("b")}), runtime sha256:${"e".repeat(64)}`,
    ]);
    const abandoned: BootStatusView = { ...done, boot_epoch: 0, last_reconstruction: { ...done.last_reconstruction!, outcome: "abandoned", runtime_manifest_digest: null } };
    expect(bootText(abandoned)[1]).toBe(`  last reconstruction: abandoned at 2026-01-02T00:00:00Z, to epoch 1 (OS ${FP("a")} → ${FP("b")})`);
    expect(bootText({ ...none, error: "the OS fingerprint file /s/bootstrap/os_fingerprint.json is not JSON" })).toEqual(["boot: unreadable: the OS fingerprint file /s/bootstrap/os_fingerprint.json is not JSON"]);
  });
});

describe("edgectl relay config: units as an operator set them", () => {
  it("set-bandwidth says 'unlimited' for a 0 quota as `config get` does (not 'daily quota 0 B')", () => {
    expect(bandwidthText({ bytes_per_second: 0, daily_quota_bytes: 0, quota_reset_utc: "00:00" })).toBe("rate unlimited  daily quota unlimited  reset 00:00 UTC");
    expect(bandwidthText({ bytes_per_second: 500, daily_quota_bytes: 10, quota_reset_utc: "03:30" })).toBe("rate 500 B/s  daily quota 10 B  reset 03:30 UTC");
  });

  it("config get shows dead-letter retention set in hours as hours (not 604800000 ms)", () => {
    expect(durationText(604_800_000)).toBe("168 h");
    expect(durationText(1_500)).toBe("1500 ms");
  });
});
