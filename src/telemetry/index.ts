export * from "./wal/index.js";
export * from "./exporter/index.js";
