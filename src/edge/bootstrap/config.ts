import { dirname, resolve } from "node:path";
import { loadConfigFile } from "../../lib/index.js";
import { EDGE_DEFAULTS, edgeFileSchema } from "../config/schema.js";
import type { EdgeConfig } from "../config/schema.js";
import { EdgeError } from "../errors.js";

/** The part of the resolved config the bootstrap reads. */
export type BootstrapConfig = Pick<EdgeConfig, "source" | "node" | "transport" | "bootstrap">;

/**
 * Interim: loads edge.toml with the shared schema and resolves only what the
 * bootstrap needs (paths relative to the file's directory). Replaced by the
 * edge config loader (`loadEdgeConfig`, src/edge/config/load.ts) once it lands.
 */
export async function loadBootstrapConfig(path: string): Promise<BootstrapConfig> {
  const source = resolve(path);
  const doc = await loadConfigFile(source, edgeFileSchema, {
    what: "edge config",
    fail: (message, o) => new EdgeError("EDGE_CONFIG_INVALID", message, { cause: o.cause, details: { fields: o.fields } }),
  });
  const at = (p: string): string => resolve(dirname(source), p);
  const b = doc.bootstrap ?? {};
  return {
    source,
    node: { id: doc.node.id, stateRoot: at(doc.node.state_root) },
    transport: { certFile: at(doc.transport.cert_file), keyFile: at(doc.transport.key_file), caFile: at(doc.transport.ca_file), ...(doc.transport.listen ? { listen: doc.transport.listen } : {}) },
    bootstrap: {
      ...(b.runtime_install_dir !== undefined ? { runtimeInstallDir: at(b.runtime_install_dir) } : {}),
      osReleaseFile: at(b.os_release_file ?? EDGE_DEFAULTS.bootstrap.osReleaseFile),
      kernelReleaseFile: at(b.kernel_release_file ?? EDGE_DEFAULTS.bootstrap.kernelReleaseFile),
      ...(b.machine_arch !== undefined ? { machineArch: b.machine_arch } : {}),
    },
  };
}
