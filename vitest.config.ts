import { defineConfig } from "vitest/config";
import { SkipReporter } from "./test/helpers/skip-reporter.js";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
    // The summary lists what AUTONOMY_TEST_SKIP skipped; any other skip fails the run.
    reporters: ["default", new SkipReporter()],
  },
});
