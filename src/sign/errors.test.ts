import { describe, expect, it } from "vitest";
import { AutonomyError, ExitCodes } from "../lib/index.js";
import { SIGN_ERROR_CODES, SignError, VERIFICATION_ERROR_CODES, VerificationError } from "./errors.js";

describe("SignError", () => {
  it.each(SIGN_ERROR_CODES)("%s has a hint and exits 1", (code) => {
    const e = new SignError(code, "m");
    expect(e).toBeInstanceOf(AutonomyError);
    expect(e).toMatchObject({ name: "SignError", code, exitCode: ExitCodes.failure });
    expect(e.hint.length).toBeGreaterThan(20);
  });

  it("names AUTONOMY_KEY_PASSWORD when a password is required", () => {
    expect(new SignError("KEY_PASSWORD_REQUIRED", "m").hint).toContain("AUTONOMY_KEY_PASSWORD");
  });
});

describe("VerificationError", () => {
  it.each(VERIFICATION_ERROR_CODES)("%s has a hint and exits 4", (code) => {
    const e = new VerificationError(code, "m", { details: { x: 1 } });
    expect(e).toMatchObject({ name: "VerificationError", code, exitCode: ExitCodes.verification, details: { x: 1 } });
    expect(e.hint.length).toBeGreaterThan(20);
  });

  it("takes a caller's hint in place of the catalogue's", () => {
    const e = new VerificationError("LOCK_MISSING", "m", "attach it", { details: { d: 1 } });
    expect(e).toMatchObject({ hint: "attach it", details: { d: 1 }, exitCode: ExitCodes.verification });
  });
});
