/**
 * bench/events/exec_line_bench.ts: user-space time per exec (its exec and
 * exec_argv records, as the kernel writes them) from the drained bytes to
 * the JSON lines, three ways in one run:
 *
 *   floor    decode only (forEachRecord)
 *   generic  decode → recordToEvent → stamp → eventJson (the path of every
 *            event while an /events subscriber watches, and of all other kinds)
 *   fast     decode → telemetryLineWriter (the daemon's path for exec telemetry)
 *
 *   deno run -A bench/events/exec_line_bench.ts
 *
 * Prints ns per exec and the ratios; never fails on timing.
 *
 * @module
 */
import {
  ABI_LAYOUT,
  AEGIS_EV_EXEC,
  AEGIS_EV_EXEC_ARGV,
  AEGIS_EV_EXEC_ARGV_V1,
  AEGIS_EV_EXEC_V2,
} from "../../src/bpf/abi_gen.ts";
import type { AegisEvent } from "../../src/contracts.ts";
import { CgroupPathResolver } from "../../src/events/cgroup_path.ts";
import { forEachRecord, FRAME_HDR, type KernelRecord } from "../../src/events/decode.ts";
import { EventEnvelope, eventJson } from "../../src/events/envelope.ts";
import { recordToEvent } from "../../src/events/json.ts";
import { telemetryLineWriter } from "../../src/events/telemetry_line.ts";
import { printTable } from "../lib.ts";

const H = ABI_LAYOUT.structs.aegis_ev_hdr.fields;
const P = ABI_LAYOUT.structs.aegis_ev_proc.fields;
const EXEC = ABI_LAYOUT.structs.aegis_ev_exec;
const ARGV = ABI_LAYOUT.structs.aegis_ev_exec_argv;
const EXECS = 512;
const ROUNDS = Number(Deno.env.get("AEGIS_BENCH_ROUNDS") ?? "7");

/** One drained batch: EXECS × (exec, exec_argv of "/usr/bin/true --version"). */
function batch(): { buf: Uint8Array; dv: DataView; bytes: number } {
  const args = new TextEncoder().encode("/usr/bin/true\0--version\0");
  const argvSize = (ARGV.fields.args.offset + args.length + 7) & ~7;
  const buf = new Uint8Array(EXECS * (EXEC.size + argvSize + 2 * FRAME_HDR + 16));
  const dv = new DataView(buf.buffer);
  let off = 0;
  const record = (size: number, kind: number, version: number, procAt: number) => {
    dv.setUint32(off, size, true);
    const b = off + FRAME_HDR;
    dv.setBigUint64(b + H.ktime_ns.offset, 5_000_000_000n + BigInt(off), true);
    dv.setUint32(b + H.size.offset, size, true);
    dv.setUint16(b + H.kind.offset, kind, true);
    dv.setUint16(b + H.version.offset, version, true);
    const p = b + procAt;
    dv.setBigUint64(p + P.cgid.offset, 1n, true);
    dv.setBigUint64(p + P.start_time.offset, 4_000_000_000n + BigInt(off), true);
    dv.setBigUint64(p + P.parent_start_time.offset, 1_000_000n, true);
    dv.setUint32(p + P.pid.offset, 1000 + off, true);
    dv.setUint32(p + P.tid.offset, 1000 + off, true);
    dv.setUint32(p + P.ppid.offset, 999, true);
    buf.set(new TextEncoder().encode("true"), p + P.comm.offset);
    off += FRAME_HDR + ((size + 7) & ~7);
    return b;
  };
  for (let i = 0; i < EXECS; i++) {
    record(EXEC.size, AEGIS_EV_EXEC, AEGIS_EV_EXEC_V2, EXEC.fields.proc.offset);
    const b = record(argvSize, AEGIS_EV_EXEC_ARGV, AEGIS_EV_EXEC_ARGV_V1, ARGV.fields.proc.offset);
    dv.setUint32(b + ARGV.fields.len.offset, args.length, true);
    dv.setUint32(b + ARGV.fields.total.offset, args.length, true);
    buf.set(args, b + ARGV.fields.args.offset);
  }
  return { buf, dv, bytes: off };
}

const { buf, dv, bytes } = batch();
const envelope = new EventEnvelope({
  host: "bench",
  agentVersion: "0",
  clockOffsetNs: 1_700_000_000_000_000_000n,
});
const cgroups = new CgroupPathResolver();
const fast = telemetryLineWriter(envelope, cgroups);
let sink = 0; // keeps the lines alive enough not to be optimised away
const ways: Record<string, (r: KernelRecord) => void> = {
  floor: () => {},
  generic: (r) => {
    sink += eventJson(envelope.stamp(recordToEvent(r, cgroups) as AegisEvent)).length;
  },
  fast: (r) => {
    sink += fast(r)!.length;
  },
};

function nsPerExec(way: (r: KernelRecord) => void, batches: number): number {
  const t0 = performance.now();
  for (let i = 0; i < batches; i++) {
    forEachRecord(buf, dv, bytes, way, (e) => {
      throw new Error(`bench batch rejected: ${JSON.stringify(e)}`);
    });
  }
  return ((performance.now() - t0) * 1e6) / (batches * EXECS);
}

for (const w of Object.values(ways)) nsPerExec(w, 200); // warm up every way
const results: Record<string, number[]> = { floor: [], generic: [], fast: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, w] of Object.entries(ways)) results[name].push(nsPerExec(w, 400));
}
const med = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, med(v)]));
await printTable(
  `exec telemetry in user space: ns per exec (its 2 lines), median of ${ROUNDS} interleaved ` +
    `rounds of ${400 * EXECS} execs, min..max, × floor, × generic`,
  Object.entries(results).map(([k, v]) => [
    k,
    `${m[k].toFixed(0)}  ${Math.min(...v).toFixed(0)}..${Math.max(...v).toFixed(0)}  ` +
    `×${(m[k] / m.floor).toFixed(2)}  ×${(m[k] / m.generic).toFixed(2)}`,
  ]),
);
if (sink === 0) throw new Error("exec_line_bench: no line was written");
