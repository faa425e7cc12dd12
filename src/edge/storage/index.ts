// The edge daemon's content-addressed segment store (docs/segment-store.md).
export { STORE_BLOCK_BYTES, diskCost, openSegmentStore, segmentIdOf } from "./segment-store.js";
export type { SegmentStoreOptions } from "./segment-store.js";
export { SegmentAssembler } from "./verified.js";
export type { RangeHasher } from "./verified.js";
