import { LayoutRepository } from "./layout-store.js";
import { openRegistryRepository } from "./registry-client.js";
import type { RegistryOptions } from "./registry-client.js";
import type { Reference } from "./reference.js";
import type { OciRepository } from "./types.js";

export type RepositoryOptions = RegistryOptions;

/** Opens the store a reference names: an image-layout directory or a registry repository. */
export function openRepository(ref: Reference, opts: RepositoryOptions = {}): OciRepository {
  return ref.kind === "layout" ? new LayoutRepository(ref.dir) : openRegistryRepository(ref, opts);
}
