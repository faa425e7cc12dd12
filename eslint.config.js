// Lint: typescript-eslint's type-aware recommended rules over src, test and bench.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import { layersPlugin } from "./scripts/eslint-layers.js";

export default tseslint.config(
  { ignores: ["dist/**", "dist-check/**", "node_modules/**", "work/**", ".autonomy-quickstart/**", "evidence/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-floating-promises": "error",
      "no-console": "off",
    },
  },
  { files: ["**/*.js"], ...tseslint.configs.disableTypeChecked },
  // The layer order of src/ (layers.json): a violation fails `npm run lint`, hence `npm test`.
  {
    files: ["src/**/*.ts"],
    plugins: { layers: layersPlugin(import.meta.dirname) },
    rules: { "layers/order": "error", "layers/index-only": "error", "layers/no-test-import": "error", "layers/known-domain": "error", "layers/static-specifier": "error", "layers/no-require": "error" },
  },
);
