/**
 * Decoders for kernel ring-buffer records. Offsets come from the generated
 * ABI layout (src/bpf/abi_gen.ts), so a header change that is not
 * regenerated fails the artifacts test instead of decoding garbage.
 *
 * Every record's common header (kind, version, size) is checked before
 * its body is read; a record that fails the check is reported, not decoded.
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
  AEGIS_EV_HASH_BLOCK,
  AEGIS_EV_HASH_BLOCK_V1,
  AEGIS_EV_KERNEL_BLOCK,
  AEGIS_EV_KERNEL_BLOCK_V2,
  AEGIS_EV_NET_BLOCK,
  AEGIS_EV_NET_BLOCK_V2,
  AEGIS_EV_OPEN,
  AEGIS_EV_OPEN_V2,
  AEGIS_EV_TAMPER_BLOCK,
  AEGIS_EV_TAMPER_BLOCK_V1,
} from "../bpf/abi_gen.ts";
import { toHex } from "../util/bytes.ts";

const H = ABI_LAYOUT.structs.aegis_ev_hdr;
const P = ABI_LAYOUT.structs.aegis_ev_proc;
const EXEC = ABI_LAYOUT.structs.aegis_ev_exec;
const ARGV = ABI_LAYOUT.structs.aegis_ev_exec_argv;
const OPEN = ABI_LAYOUT.structs.aegis_ev_open;
const FBLK = ABI_LAYOUT.structs.aegis_ev_file_block;
const NBLK = ABI_LAYOUT.structs.aegis_ev_net_block;
const KBLK = ABI_LAYOUT.structs.aegis_ev_kernel_block;
const TBLK = ABI_LAYOUT.structs.aegis_ev_tamper_block;
const HBLK = ABI_LAYOUT.structs.aegis_ev_hash_block;
/** Every record puts its struct aegis_ev_proc at the same offset. */
const PROC = EXEC.fields.proc.offset;
for (const s of [OPEN, FBLK, NBLK, KBLK, ARGV, TBLK, HBLK]) {
  if (s.fields.proc.offset !== PROC) throw new Error("ABI: proc offset differs between records");
}

/**
 * Identity of the process a record is about, flattened into every
 * process-scoped record (one object per record: the drain's cost is mostly
 * allocation).
 *
 * u64 kernel values are {@link U64}: a number while it is exact (below
 * 2^53: for the ns clocks the first ≈ 104 days of uptime), a bigint beyond,
 * so events always carry the exact digits. The common case costs one
 * compare; BigInts cost ≈ 25 ns a record.
 */
/** A kernel u64: a number when exact (< 2^53), else a bigint. */
export type U64 = number | bigint;

export interface ProcInfo {
  pid: number;
  tid: number;
  ppid: number;
  uid: number;
  cgid: U64;
  /** task start time, ns since boot */
  startTime: U64;
  /** the parent's (real_parent) start time, ns since boot */
  parentStartTime: U64;
  comm: string;
}

export interface ExecRecord extends ProcInfo {
  kind: "exec";
  ktimeNs: U64;
}

/**
 * The new image's arguments (`run --exec-argv on`), right after its exec
 * record: at most AEGIS_ARGV_LEN bytes of them (docs/telemetry.md).
 */
export interface ExecArgvRecord extends ProcInfo {
  kind: "exec_argv";
  ktimeNs: U64;
  /** the arguments read, in order; the last one cut when `truncated` */
  argv: string[];
  /** bytes of the whole argument area */
  totalBytes: number;
  /** the argument area was longer than what the record holds (or unreadable) */
  truncated: boolean;
}

export interface OpenRecord extends ProcInfo {
  kind: "open";
  ktimeNs: U64;
  flags: number;
  dfd: number;
  path: string;
}

/** Fields every block record has. */
interface BlockFields {
  /** enum aegis_action: 0 AUDIT, 1 BLOCK, 2 TERM, 3 KILL, 4 INT */
  action: number;
  /** enum aegis_hook */
  hook: number;
  ruleId: number;
}

export interface FileBlockRecord extends ProcInfo, BlockFields {
  kind: "file_block";
  ktimeNs: U64;
  ino: U64;
  /** kernel dev encoding (major << 20 | minor) */
  dev: number;
  ruleFlags: number;
  /** empty when the kernel did not resolve it */
  path: string;
  /**
   * deny_binary_hash (an AEGIS_EV_HASH_BLOCK record): the file's SHA-256
   * that matched, 64 lower-case hex digits; absent for an inode/comm rule
   */
  sha256?: string;
}

export interface NetBlockRecord extends ProcInfo, BlockFields {
  kind: "net_block";
  ktimeNs: U64;
  /** 2 (AF_INET) or 10 (AF_INET6) */
  family: number;
  /** dotted IPv4 or full IPv6 text */
  addr: string;
  port: number;
  proto: number;
  /** enum aegis_rule_type */
  ruleType: number;
}

export interface KernelBlockRecord extends ProcInfo, BlockFields {
  kind: "kernel_block";
  ktimeNs: U64;
  targetPid: number;
  detail: number;
  ruleType: number;
}

/**
 * A refused tamper attempt (run --self-protect, bpf/self.bpf.c): the
 * process fields are the actor. Not a policy block: no rule, never thinned.
 */
export interface TamperBlockRecord extends ProcInfo {
  kind: "tamper_block";
  ktimeNs: U64;
  /** enum aegis_action: 1 BLOCK, 0 AUDIT (emergency disable, break-glass) */
  action: number;
  /** enum aegis_hook */
  hook: number;
  /** enum aegis_tamper_op */
  op: number;
  /** enum aegis_guard */
  guard: number;
  /** file operations: the guarded inode that matched, else 0 */
  ino: U64;
  dev: number;
  /** map or link id; signal, ptrace: the target's pid */
  target: number;
  /** signal, ptrace: the target's cgroup id, else 0 */
  targetCgid: U64;
  /** signal number, fmode, ptrace mode, bpf command or open flags */
  detail: number;
  /** file operations: the entry's name, else "" */
  name: string;
}

export type KernelRecord =
  | ExecRecord
  | ExecArgvRecord
  | OpenRecord
  | FileBlockRecord
  | NetBlockRecord
  | KernelBlockRecord
  | TamperBlockRecord;

/** Why a record was rejected. */
export type RecordError =
  | { error: "short"; len: number }
  | { error: "unknown_kind"; kind: number }
  | { error: "bad_version"; kind: number; version: number }
  | { error: "bad_size"; kind: number; size: number; len: number };

const utf8 = new TextDecoder();

/**
 * Interning cache for fixed-size NUL-terminated string fields. Kernel
 * records repeat the same comm and path values many times; decoding the
 * bytes again each time dominated the drain's cost (≈ 165 of ≈ 220 ns per
 * record), so a field's 32-bit words are hashed and compared with a cached
 * copy before decoding. Bounded: cleared when it reaches `limit` entries.
 */
interface CachedString {
  words: Uint32Array;
  text: string;
  /**
   * The field size it was read from: a value that fills a field with no
   * NUL is a prefix of a longer value in a bigger field (record kinds differ
   * in path size), so it only matches fields of its own size.
   */
  max: number;
}

class StringCache {
  #map = new Map<number, CachedString[]>();
  #size = 0;
  #limit: number;
  /** the entry returned last: checked first, since values come in runs */
  #last: CachedString | null = null;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** Text of the field at b[off, off+max) (max a multiple of 4). */
  get(b: Uint8Array, dv: DataView, off: number, max: number): string {
    const last = this.#last;
    if (last !== null && last.max === max) {
      const w = last.words;
      let i = 0;
      while (i < w.length && w[i] === dv.getUint32(off + i * 4, true)) i++;
      if (i === w.length) return last.text;
    }
    const n = max >>> 2;
    let h = 0x811c9dc5;
    let used = n;
    for (let i = 0; i < n; i++) {
      const w = dv.getUint32(off + i * 4, true);
      h = Math.imul(h ^ w, 0x01000193);
      // stop after the word holding the terminating NUL
      if ((w & 0xff) === 0 || (w & 0xff00) === 0 || (w & 0xff0000) === 0 || (w >>> 24) === 0) {
        used = i + 1;
        break;
      }
    }
    const bucket = this.#map.get(h);
    if (bucket) {
      outer: for (const e of bucket) {
        if (e.words.length !== used || e.max !== max) continue;
        for (let i = 0; i < used; i++) {
          if (e.words[i] !== dv.getUint32(off + i * 4, true)) continue outer;
        }
        this.#last = e;
        return e.text;
      }
    }
    let end = b.indexOf(0, off);
    if (end < 0 || end > off + max) end = off + max;
    const text = end === off ? "" : utf8.decode(b.subarray(off, end));
    const words = new Uint32Array(used);
    for (let i = 0; i < used; i++) words[i] = dv.getUint32(off + i * 4, true);
    if (this.#size >= this.#limit) {
      this.#map.clear();
      this.#size = 0;
    }
    const entry = { words, text, max };
    if (bucket) bucket.push(entry);
    else this.#map.set(h, [entry]);
    this.#size++;
    this.#last = entry;
    return text;
  }
}

const comms = new StringCache(4096);
const paths = new StringCache(16384);

/** u64 little-endian: a number while exact, else a bigint (see ProcInfo). */
export function u64(dv: DataView, off: number): U64 {
  const hi = dv.getUint32(off + 4, true);
  // below 2^53 a double holds every integer exactly
  if (hi < 0x200000) return dv.getUint32(off, true) + hi * 4294967296;
  return dv.getBigUint64(off, true);
}

/** The process part of a record, as the start of the record object. */
function proc(dv: DataView, b: Uint8Array, off: number): ProcInfo {
  const o = off + PROC;
  return {
    pid: dv.getUint32(o + P.fields.pid.offset, true),
    tid: dv.getUint32(o + P.fields.tid.offset, true),
    ppid: dv.getUint32(o + P.fields.ppid.offset, true),
    uid: dv.getUint32(o + P.fields.uid.offset, true),
    cgid: u64(dv, o + P.fields.cgid.offset),
    startTime: u64(dv, o + P.fields.start_time.offset),
    parentStartTime: u64(dv, o + P.fields.parent_start_time.offset),
    comm: comms.get(b, dv, o + P.fields.comm.offset, P.fields.comm.size),
  };
}

/** A field of a record: where it is and how long. */
type Field = { readonly offset: number; readonly size: number };
/** The fields a file block and a hash block share (same names, each at its own offset). */
type FileBlockFields = Record<
  "ino" | "dev" | "rule_id" | "rule_flags" | "action" | "hook" | "path",
  Field
>;

/** A file_block record from the fields `f` of a file or hash block record. */
function fileBlock(
  f: FileBlockFields,
  dv: DataView,
  b: Uint8Array,
  off: number,
  ktimeNs: U64,
): FileBlockRecord {
  const r = proc(dv, b, off) as FileBlockRecord;
  r.kind = "file_block";
  r.ktimeNs = ktimeNs;
  r.ino = u64(dv, off + f.ino.offset);
  r.dev = dv.getUint32(off + f.dev.offset, true);
  r.ruleId = dv.getUint32(off + f.rule_id.offset, true);
  r.ruleFlags = dv.getUint16(off + f.rule_flags.offset, true);
  r.action = b[off + f.action.offset];
  r.hook = b[off + f.hook.offset];
  r.path = paths.get(b, dv, off + f.path.offset, f.path.size);
  return r;
}

/**
 * NUL-separated arguments → strings (invalid UTF-8 becomes U+FFFD). A last
 * argument with no NUL (the bytes were cut) is kept as it is.
 */
export function splitArgs(bytes: Uint8Array): string[] {
  if (bytes.length === 0) return [];
  // one decode for the whole block (NUL is ASCII: a broken sequence before a
  // NUL decodes to U+FFFD on its own side, as it would part by part)
  const parts = utf8.decode(bytes).split("\0");
  if (bytes[bytes.length - 1] === 0) parts.pop();
  return parts;
}

function ipText(b: Uint8Array, off: number, family: number): string {
  if (family === 2) return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(((b[off + i] << 8) | b[off + i + 1]).toString(16));
  return parts.join(":");
}

/**
 * Expected version and size of each record kind; `min`: a record of
 * variable size (exec_argv: only the used part of its args), from `min` to
 * `size` bytes in steps of 8.
 */
const KINDS: Record<number, { version: number; size: number; min?: number }> = {
  [AEGIS_EV_EXEC]: { version: AEGIS_EV_EXEC_V2, size: EXEC.size },
  [AEGIS_EV_EXEC_ARGV]: {
    version: AEGIS_EV_EXEC_ARGV_V1,
    size: ARGV.size,
    min: ARGV.fields.args.offset,
  },
  [AEGIS_EV_OPEN]: { version: AEGIS_EV_OPEN_V2, size: OPEN.size },
  [AEGIS_EV_FILE_BLOCK]: { version: AEGIS_EV_FILE_BLOCK_V2, size: FBLK.size },
  [AEGIS_EV_NET_BLOCK]: { version: AEGIS_EV_NET_BLOCK_V2, size: NBLK.size },
  [AEGIS_EV_KERNEL_BLOCK]: { version: AEGIS_EV_KERNEL_BLOCK_V2, size: KBLK.size },
  [AEGIS_EV_TAMPER_BLOCK]: { version: AEGIS_EV_TAMPER_BLOCK_V1, size: TBLK.size },
  [AEGIS_EV_HASH_BLOCK]: { version: AEGIS_EV_HASH_BLOCK_V1, size: HBLK.size },
};

/**
 * Decode one record at `off` of length `len` in `b` (dv views the same
 * buffer). Returns the record or the reason it was rejected.
 */
export function decodeRecord(
  dv: DataView,
  b: Uint8Array,
  off: number,
  len: number,
): KernelRecord | RecordError {
  if (len < H.size) return { error: "short", len };
  const kind = dv.getUint16(off + H.fields.kind.offset, true);
  const version = dv.getUint16(off + H.fields.version.offset, true);
  const size = dv.getUint32(off + H.fields.size.offset, true);
  const want = KINDS[kind];
  if (!want) return { error: "unknown_kind", kind };
  if (version !== want.version) return { error: "bad_version", kind, version };
  if (want.min === undefined) {
    if (size !== want.size || len < want.size) return { error: "bad_size", kind, size, len };
  } else if (size < want.min || size > want.size || size % 8 !== 0 || len < size) {
    return { error: "bad_size", kind, size, len };
  }
  const ktimeNs = u64(dv, off + H.fields.ktime_ns.offset);
  // One object per record: the process part, extended in place.
  switch (kind) {
    case AEGIS_EV_EXEC: {
      const r = proc(dv, b, off) as ExecRecord;
      r.kind = "exec";
      r.ktimeNs = ktimeNs;
      return r;
    }
    case AEGIS_EV_EXEC_ARGV: {
      const r = proc(dv, b, off) as ExecArgvRecord;
      r.kind = "exec_argv";
      r.ktimeNs = ktimeNs;
      const total = dv.getUint32(off + ARGV.fields.total.offset, true);
      // only what this record holds (its size says how much of args is there)
      const len = Math.min(
        dv.getUint32(off + ARGV.fields.len.offset, true),
        size - ARGV.fields.args.offset,
      );
      r.argv = splitArgs(
        b.subarray(off + ARGV.fields.args.offset, off + ARGV.fields.args.offset + len),
      );
      r.totalBytes = total;
      r.truncated = len < total;
      return r;
    }
    case AEGIS_EV_OPEN: {
      const r = proc(dv, b, off) as OpenRecord;
      r.kind = "open";
      r.ktimeNs = ktimeNs;
      r.flags = dv.getInt32(off + OPEN.fields.flags.offset, true);
      r.dfd = dv.getInt32(off + OPEN.fields.dfd.offset, true);
      r.path = paths.get(b, dv, off + OPEN.fields.path.offset, OPEN.fields.path.size);
      return r;
    }
    case AEGIS_EV_FILE_BLOCK:
      return fileBlock(FBLK.fields, dv, b, off, ktimeNs);
    case AEGIS_EV_HASH_BLOCK: {
      // an exec denied by content: a file block that also names the digest
      const f = HBLK.fields;
      const r = fileBlock(f, dv, b, off, ktimeNs);
      r.sha256 = toHex(b.subarray(off + f.sha256.offset, off + f.sha256.offset + f.sha256.size));
      return r;
    }
    case AEGIS_EV_NET_BLOCK: {
      const f = NBLK.fields;
      const r = proc(dv, b, off) as NetBlockRecord;
      r.kind = "net_block";
      r.ktimeNs = ktimeNs;
      r.family = b[off + f.family.offset];
      r.addr = ipText(b, off + f.addr.offset, r.family);
      r.port = dv.getUint16(off + f.port.offset, true);
      r.proto = b[off + f.proto.offset];
      r.ruleId = dv.getUint32(off + f.rule_id.offset, true);
      r.ruleType = b[off + f.rule_type.offset];
      r.action = b[off + f.action.offset];
      r.hook = b[off + f.hook.offset];
      return r;
    }
    case AEGIS_EV_TAMPER_BLOCK: {
      const f = TBLK.fields;
      const r = proc(dv, b, off) as TamperBlockRecord;
      r.kind = "tamper_block";
      r.ktimeNs = ktimeNs;
      r.action = b[off + f.action.offset];
      r.hook = b[off + f.hook.offset];
      r.op = b[off + f.op.offset];
      r.guard = b[off + f.guard.offset];
      r.ino = u64(dv, off + f.ino.offset);
      r.dev = dv.getUint32(off + f.dev.offset, true);
      r.target = dv.getUint32(off + f.target.offset, true);
      r.targetCgid = u64(dv, off + f.target_cgid.offset);
      r.detail = dv.getUint32(off + f.detail.offset, true);
      r.name = paths.get(b, dv, off + f.name.offset, f.name.size);
      return r;
    }
    default: {
      const f = KBLK.fields;
      const r = proc(dv, b, off) as KernelBlockRecord;
      r.kind = "kernel_block";
      r.ktimeNs = ktimeNs;
      r.targetPid = dv.getUint32(off + f.target_pid.offset, true);
      r.detail = dv.getUint32(off + f.detail.offset, true);
      r.ruleId = dv.getUint32(off + f.rule_id.offset, true);
      r.ruleType = b[off + f.rule_type.offset];
      r.action = b[off + f.action.offset];
      r.hook = b[off + f.hook.offset];
      return r;
    }
  }
}

/** Is this a decoded record (not an error)? */
export function isRecord(r: KernelRecord | RecordError): r is KernelRecord {
  return !("error" in r);
}

/** Framing of a drained batch: u32 len, u32 0, data, padding to 8. */
export const FRAME_HDR = 8;

/**
 * Walk the records of a drained batch `b[0..bytes)`, calling `onRecord`
 * with each decoded record and `onError` with each rejected one.
 * Returns the number of frames seen.
 */
export function forEachRecord(
  b: Uint8Array,
  dv: DataView,
  bytes: number,
  onRecord: (r: KernelRecord) => void,
  onError: (e: RecordError) => void,
): number {
  let off = 0;
  let n = 0;
  while (off + FRAME_HDR <= bytes) {
    const len = dv.getUint32(off, true);
    if (off + FRAME_HDR + len > bytes) {
      onError({ error: "short", len });
      break;
    }
    const r = decodeRecord(dv, b, off + FRAME_HDR, len);
    if ("error" in r) onError(r);
    else onRecord(r);
    n++;
    off += FRAME_HDR + ((len + 7) & ~7);
  }
  return n;
}
