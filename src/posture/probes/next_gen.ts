/**
 * Probe: evidence of newer BPF features, from kernel BTF symbols. Each is
 * true only with positive evidence; null when there is no BTF query.
 * `binary_auth` (signed BPF programs) has no kernel symbol to check yet, so
 * it is false unless evidence appears.
 *
 * @module
 */
import type { BtfFuncQuery, ProbeResult } from "../probe.ts";
import { errorText, unknown } from "../probe.ts";

export interface NextGenBpf {
  arena: boolean;
  user_ringbuf: boolean;
  sched_ext: boolean;
  open_coded_iterators: boolean;
  xattr_kfuncs: boolean;
  bpf_send_signal_task: boolean;
  binary_auth: boolean;
  bpf_token: boolean;
}

/** Evidence symbols: a feature is present when any of its symbols is. */
export const NEXT_GEN_SYMBOLS: Record<keyof NextGenBpf, readonly string[]> = {
  arena: ["bpf_arena_alloc_pages"],
  user_ringbuf: ["bpf_user_ringbuf_drain"],
  sched_ext: ["scx_bpf_dsq_insert", "scx_bpf_dispatch", "bpf_scx_reg"],
  open_coded_iterators: ["bpf_iter_num_new"],
  xattr_kfuncs: ["bpf_get_file_xattr"],
  bpf_send_signal_task: ["bpf_send_signal_task"],
  binary_auth: [],
  bpf_token: ["bpf_token_create"],
};

export function probeNextGenBpf(hasBtfFunc: BtfFuncQuery): ProbeResult<NextGenBpf> {
  if (!hasBtfFunc) return unknown("no BTF query available (needs root and the shim)");
  try {
    const has = (k: keyof NextGenBpf) => NEXT_GEN_SYMBOLS[k].some((s) => hasBtfFunc(s));
    return {
      status: "supported",
      value: {
        arena: has("arena"),
        user_ringbuf: has("user_ringbuf"),
        sched_ext: has("sched_ext"),
        open_coded_iterators: has("open_coded_iterators"),
        xattr_kfuncs: has("xattr_kfuncs"),
        bpf_send_signal_task: has("bpf_send_signal_task"),
        binary_auth: has("binary_auth"),
        bpf_token: has("bpf_token"),
      },
    };
  } catch (e) {
    return unknown(`BTF query failed: ${errorText(e)}`);
  }
}
