/**
 * Probe: evidence of newer BPF features, from kernel BTF functions (the
 * helper or kfunc a feature brings with it). Each is true only with
 * positive evidence; the whole probe is unknown when there is no BTF query.
 * sched_ext (a sysfs directory) and binary_auth (derived) have probes of
 * their own.
 *
 * @module
 */
import type { BtfFuncQuery, ProbeResult } from "../probe.ts";
import { errorText, unknown } from "../probe.ts";

export interface NextGenBpf {
  /** BPF_MAP_TYPE_ARENA (6.9): its kfunc bpf_arena_alloc_pages */
  arena: boolean;
  /** BPF_MAP_TYPE_USER_RINGBUF (6.1): its helper bpf_user_ringbuf_drain */
  user_ringbuf: boolean;
  /** open-coded iterators (6.4): bpf_iter_num_new */
  open_coded_iterators: boolean;
  /** the file xattr kfunc (6.8) */
  xattr_kfuncs: boolean;
  bpf_send_signal_task: boolean;
  /** BPF tokens (6.9): bpf_token_create */
  bpf_token: boolean;
  /** the IMA hash helpers an LSM program can call (5.11 / 5.18) */
  bpf_ima_helpers: boolean;
}

/** Evidence symbols: a feature is present when any of its symbols is. */
export const NEXT_GEN_SYMBOLS: Record<keyof NextGenBpf, readonly string[]> = {
  arena: ["bpf_arena_alloc_pages"],
  user_ringbuf: ["bpf_user_ringbuf_drain"],
  open_coded_iterators: ["bpf_iter_num_new"],
  xattr_kfuncs: ["bpf_get_file_xattr"],
  bpf_send_signal_task: ["bpf_send_signal_task"],
  bpf_token: ["bpf_token_create"],
  bpf_ima_helpers: ["bpf_ima_inode_hash", "bpf_ima_file_hash"],
};

export function probeNextGenBpf(hasBtfFunc: BtfFuncQuery): ProbeResult<NextGenBpf> {
  if (!hasBtfFunc) return unknown("no BTF query available (needs root and the shim)");
  try {
    const has = (k: keyof NextGenBpf) => NEXT_GEN_SYMBOLS[k].some((s) => hasBtfFunc(s));
    const value = {} as NextGenBpf;
    for (const k of Object.keys(NEXT_GEN_SYMBOLS) as (keyof NextGenBpf)[]) value[k] = has(k);
    return { status: "supported", value };
  } catch (e) {
    return unknown(`BTF query failed: ${errorText(e)}`);
  }
}
