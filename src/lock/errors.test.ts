import { describe, expect, it } from "vitest";
import { AutonomyError, ExitCodes } from "../lib/index.js";
import { LOCK_ERROR_CODES, LockError } from "./errors.js";

describe("LockError", () => {
  it.each(LOCK_ERROR_CODES)("%s carries a hint, its name and its code", (code) => {
    const e = new LockError(code, "something is wrong");
    expect(e).toBeInstanceOf(AutonomyError);
    expect(e.name).toBe("LockError");
    expect(e.code).toBe(code);
    expect(e.hint.length).toBeGreaterThan(20);
    expect(e.toJSON()).toMatchObject({ error: "LockError", code, message: "something is wrong" });
  });

  it("exits 4 only for a fingerprint mismatch (tamper)", () => {
    for (const code of LOCK_ERROR_CODES) {
      const expected = code === "LOCK_FINGERPRINT_MISMATCH" ? ExitCodes.verification : ExitCodes.failure;
      expect(new LockError(code, "m").exitCode).toBe(expected);
    }
  });

  it("keeps the cause and details", () => {
    const cause = new Error("root");
    const e = new LockError("LOCK_INPUT_UNREADABLE", "m", { cause, details: { path: "/x" } });
    expect(e.cause).toBe(cause);
    expect(e.details).toEqual({ path: "/x" });
  });
});
