/**
 * The native boundary: the libbpf shim and its typed handles.
 *
 * @module
 */
export { NativeObject, NativeRing, Shim } from "./shim.ts";
export { errnoName, errnoValue } from "../errno.ts";
export { SHIM_API_VERSION, symbols } from "./symbols.ts";
