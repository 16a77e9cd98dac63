/**
 * Compatibility entry: the active-LSM probe moved to probes/lsm.ts.
 *
 * @module
 */
export { LSM_LIST_PATH, probeActiveLsms, probeBpfLsmActive } from "./probes/lsm.ts";
