import { AutonomyError, ExitCodes } from "../../lib/index.js";

/** Exporter error codes (stable strings, like the WAL's). */
export const EXPORT_ERROR_CODES = ["EXPORT_LOCKED", "EXPORT_INCOMPLETE"] as const;
export type ExportErrorCode = (typeof EXPORT_ERROR_CODES)[number];

export class ExportError extends AutonomyError<ExportErrorCode> {
  constructor(code: ExportErrorCode, message: string, hint: string, opts: { cause?: unknown; details?: Record<string, unknown> } = {}) {
    super(code, message, { hint, exitCode: ExitCodes.failure, ...opts });
  }
}
