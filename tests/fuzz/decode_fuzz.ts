/**
 * Fuzz target "decode": the kernel event record decoder
 * (src/events/decode.ts). Half the inputs keep a valid common header (kind,
 * version, size) and randomise the body, as a buggy or hostile BPF program
 * would; the rest mutate everything, including the framing of a drained
 * batch. Seeds: one valid record of each kind, built from the generated ABI
 * layout (src/bpf/abi_gen.ts), plus the committed corpus.
 *
 * Oracle beyond "no exception": decodeRecord answers a record of a known
 * kind or one of the documented RecordError shapes; forEachRecord calls
 * back once per frame it counts (plus at most one "short" for a torn tail)
 * and never reads past `bytes`.
 *
 * @module
 */
import {
  ABI_LAYOUT,
  AEGIS_EV_EXEC,
  AEGIS_EV_EXEC_ARGV,
  AEGIS_EV_EXEC_ARGV_V1,
  AEGIS_EV_EXEC_V2,
  AEGIS_EV_FILE_BLOCK,
  AEGIS_EV_FILE_BLOCK_V2,
  AEGIS_EV_KERNEL_BLOCK,
  AEGIS_EV_KERNEL_BLOCK_V2,
  AEGIS_EV_NET_BLOCK,
  AEGIS_EV_NET_BLOCK_V2,
  AEGIS_EV_OPEN,
  AEGIS_EV_OPEN_V2,
} from "../../src/bpf/abi_gen.ts";
import {
  decodeRecord,
  forEachRecord,
  FRAME_HDR,
  type KernelRecord,
  type RecordError,
} from "../../src/events/decode.ts";
import { assertClean, concat, expect, fuzz, loadCorpus, type Rng } from "./lib.ts";

const S = ABI_LAYOUT.structs;
const H = S.aegis_ev_hdr;
const P = S.aegis_ev_proc.fields;
const enc = new TextEncoder();

const KINDS = [
  [AEGIS_EV_EXEC, AEGIS_EV_EXEC_V2, S.aegis_ev_exec],
  [AEGIS_EV_EXEC_ARGV, AEGIS_EV_EXEC_ARGV_V1, S.aegis_ev_exec_argv],
  [AEGIS_EV_OPEN, AEGIS_EV_OPEN_V2, S.aegis_ev_open],
  [AEGIS_EV_FILE_BLOCK, AEGIS_EV_FILE_BLOCK_V2, S.aegis_ev_file_block],
  [AEGIS_EV_NET_BLOCK, AEGIS_EV_NET_BLOCK_V2, S.aegis_ev_net_block],
  [AEGIS_EV_KERNEL_BLOCK, AEGIS_EV_KERNEL_BLOCK_V2, S.aegis_ev_kernel_block],
] as const;

/** One valid record of each kind (plausible values, strings NUL-terminated). */
export function validRecords(): Uint8Array[] {
  return KINDS.map(([kind, version, st]) => {
    const b = new Uint8Array(st.size);
    const dv = new DataView(b.buffer);
    dv.setUint16(H.fields.kind.offset, kind, true);
    dv.setUint16(H.fields.version.offset, version, true);
    dv.setUint32(H.fields.size.offset, st.size, true);
    dv.setBigUint64(H.fields.ktime_ns.offset, 123456789n, true);
    const proc = st.fields.proc.offset;
    dv.setUint32(proc + P.pid.offset, 100, true);
    dv.setUint32(proc + P.tid.offset, 101, true);
    dv.setUint32(proc + P.ppid.offset, 1, true);
    dv.setUint32(proc + P.uid.offset, 1000, true);
    dv.setBigUint64(proc + P.cgid.offset, 4242n, true);
    b.set(enc.encode("bash"), proc + P.comm.offset);
    const f = st.fields as Record<string, { offset: number; size: number }>;
    if (f.path) b.set(enc.encode("/etc/shadow"), f.path.offset);
    if (f.family) b[f.family.offset] = kind === AEGIS_EV_NET_BLOCK ? 10 : 2;
    if (f.args) {
      const args = enc.encode("/bin/ls\0-l\0");
      b.set(args, f.args.offset);
      dv.setUint32(f.len.offset, args.length, true);
      dv.setUint32(f.total.offset, args.length, true);
    }
    return b;
  });
}

const HDR = H.size;
const ERRORS = new Set(["short", "unknown_kind", "bad_version", "bad_size"]);
const RECORD_KINDS = new Set([
  "exec",
  "exec_argv",
  "open",
  "file_block",
  "net_block",
  "kernel_block",
]);

function checkResult(r: KernelRecord | RecordError, len: number): void {
  if ("error" in r) {
    expect(ERRORS.has(r.error), `unknown RecordError ${JSON.stringify(r)}`);
    return;
  }
  expect(RECORD_KINDS.has(r.kind), `record of unknown kind ${JSON.stringify(r.kind)}`);
  expect(len >= HDR, `a ${len}-byte record decoded`);
  for (const [k, v] of Object.entries(r)) {
    if (r.kind === "exec_argv" && k === "argv") {
      expect(
        Array.isArray(v) && v.every((a) => typeof a === "string") && v.length <= 1024,
        `argv of an exec_argv record is ${String(v)}`,
      );
      continue;
    }
    if (r.kind === "exec_argv" && k === "truncated") {
      expect(typeof v === "boolean", `truncated is ${String(v)}`);
      continue;
    }
    expect(
      typeof v === "string" || (typeof v === "number" && Number.isFinite(v) && v >= -(2 ** 31)) ||
        // a u64 past 2^53: a bigint, exact and in range (numbers below that)
        (typeof v === "bigint" && v >= 2n ** 53n && v < 2n ** 64n),
      `field ${k} of a ${r.kind} record is ${String(v)}`,
    );
  }
}

/** A batch as the drain hands it over: u32 len, u32 0, record, padding to 8. */
function frame(records: Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const r of records) {
    const h = new Uint8Array(FRAME_HDR);
    new DataView(h.buffer).setUint32(0, r.length, true);
    parts.push(h, r, new Uint8Array(((r.length + 7) & ~7) - r.length));
  }
  return concat(...parts);
}

const byKind = new Map<number, (typeof KINDS)[number][2]>(KINDS.map(([kind, , st]) => [kind, st]));
const fatalFree = new TextDecoder();

/** Text of a NUL-terminated field, decoded afresh (the decoder caches these). */
function fieldText(b: Uint8Array, off: number, size: number): string {
  let end = b.subarray(off, off + size).indexOf(0);
  if (end < 0) end = size;
  return fatalFree.decode(b.subarray(off, off + end));
}

/** The decoder's cached strings equal a fresh decode of the same bytes. */
function checkStrings(b: Uint8Array, r: KernelRecord): void {
  const st = byKind.get(new DataView(b.buffer, b.byteOffset).getUint16(H.fields.kind.offset, true));
  if (!st) return;
  const comm = fieldText(b, st.fields.proc.offset + P.comm.offset, P.comm.size);
  expect(r.comm === comm, `comm ${JSON.stringify(r.comm)}, bytes say ${JSON.stringify(comm)}`);
  const f = st.fields as Record<string, { offset: number; size: number }>;
  if ((r.kind === "open" || r.kind === "file_block") && f.path) {
    const path = fieldText(b, f.path.offset, f.path.size);
    expect(r.path === path, `path ${JSON.stringify(r.path)}, bytes say ${JSON.stringify(path)}`);
  }
}

/** Checks one input as a single record and as a drained batch of records. */
export function runDecode(input: Uint8Array): string {
  // a copy at a non-zero offset of a bigger buffer: views must honour byteOffset
  const host = new Uint8Array(input.length + 16);
  host.fill(0xa5);
  host.set(input, 8);
  const b = host.subarray(8, 8 + input.length);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const one = decodeRecord(dv, b, 0, b.length);
  checkResult(one, b.length);
  if (!("error" in one)) checkStrings(b, one);

  // the input as a batch, its own framing (whatever the mutations made of it)
  let calls = 0;
  let last: KernelRecord | RecordError | null = null;
  const frames = forEachRecord(b, dv, b.length, (r) => {
    calls++;
    last = r;
    checkResult(r, HDR);
  }, (e) => {
    calls++;
    last = e;
    checkResult(e, 0);
  });
  // a torn tail is reported as "short" without being counted as a frame
  const tornTail = calls === frames + 1 && last !== null && "error" in last &&
    (last as RecordError).error === "short";
  expect(calls === frames || tornTail, `${frames} frames, ${calls} callbacks`);
  expect(frames <= Math.floor(b.length / FRAME_HDR), `${frames} frames in ${b.length} bytes`);
  return "error" in one ? one.error : one.kind;
}

/** Keep a valid header, randomise (part of) the body. */
function mutateBody(rng: Rng, input: Uint8Array): Uint8Array {
  const recs = validRecords();
  const base = rng.oneIn(2) ? rng.pick(recs) : input;
  const o = base.slice();
  const from = Math.min(HDR, o.length);
  const n = 1 + rng.int(Math.max(1, o.length - from));
  const at = from + rng.int(Math.max(1, o.length - from));
  for (let i = at; i < Math.min(o.length, at + n); i++) o[i] = rng.int(256);
  if (rng.oneIn(4)) {
    // several such records framed as one drained batch, maybe torn at the end
    const batch = frame([o, rng.pick(recs), base]);
    return rng.oneIn(2) ? batch : batch.subarray(0, rng.int(batch.length + 1));
  }
  return o;
}

Deno.test("fuzz decode: records with random bodies and framing never crash the decoder", async () => {
  const valid = validRecords();
  for (const v of valid) {
    const r = decodeRecord(new DataView(v.buffer), v, 0, v.length);
    expect(!("error" in r), `seed record does not decode: ${JSON.stringify(r)}`);
  }
  const seeds = [...valid, frame(valid), ...loadCorpus("decode").map((c) => c.bytes)];
  const r = await fuzz({
    target: "decode",
    seeds,
    run: runDecode,
    mutate: mutateBody,
    maxInput: 64 * 1024,
  });
  assertClean(r);
});
