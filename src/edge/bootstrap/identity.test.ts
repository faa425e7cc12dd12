import { describe, expect, it } from "vitest";
import { EdgeError } from "../errors.js";
import { identityPayload, osFingerprint, parseOsRelease } from "./identity.js";
import type { OsIdentity } from "./identity.js";

const id = (over: Partial<OsIdentity> = {}): OsIdentity => ({ identity_version: 1, os_release: { ID: "debian", VERSION_ID: "12" }, kernel_release: "6.1.0-18-amd64", machine_arch: "x64", ...over });

describe("OS identity", () => {
  it("parses os-release(5): quotes, escapes, comments, blank lines, every key", () => {
    const text = '# comment\nNAME="Debian GNU/Linux"\n\nID=debian\nVERSION=\'12 (bookworm)\'\nHOME_URL="https://x/\\"q\\" \\$HOME \\\\"\nEMPTY=\n';
    expect(parseOsRelease(text, "os-release")).toEqual({ NAME: "Debian GNU/Linux", ID: "debian", VERSION: "12 (bookworm)", HOME_URL: 'https://x/"q" $HOME \\', EMPTY: "" });
  });

  it("refuses a line that is not KEY=value, and an unterminated quote", () => {
    expect(() => parseOsRelease("ID=debian\nnonsense\n", "f")).toThrow(EdgeError);
    expect(() => parseOsRelease("ID=debian\nnonsense\n", "f")).toThrow(/f line 2 is not KEY=value/);
    expect(() => parseOsRelease('NAME="Debian\n', "f")).toThrow(/unterminated quote/);
  });

  it("is canonical JSON: key order in the file does not change the fingerprint", async () => {
    const a = id({ os_release: { ID: "debian", VERSION_ID: "12" } });
    const b = id({ os_release: { VERSION_ID: "12", ID: "debian" } });
    expect(identityPayload(a)).toBe(identityPayload(b));
    expect(await osFingerprint(a)).toBe(await osFingerprint(b));
    expect(await osFingerprint(a)).toMatch(/^blake3:[a-f0-9]{64}$/);
  });

  it("changes with each part: kernel alone, architecture alone, one os-release value", async () => {
    const base = await osFingerprint(id());
    expect(await osFingerprint(id({ kernel_release: "6.1.0-21-amd64" }))).not.toBe(base);
    expect(await osFingerprint(id({ machine_arch: "arm64" }))).not.toBe(base);
    expect(await osFingerprint(id({ os_release: { ID: "debian", VERSION_ID: "13" } }))).not.toBe(base);
  });
});
