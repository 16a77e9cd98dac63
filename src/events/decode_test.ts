import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  ABI_LAYOUT,
  AEGIS_EV_EXEC,
  AEGIS_EV_EXEC_ARGV,
  AEGIS_EV_EXEC_ARGV_V1,
  AEGIS_EV_EXEC_V2,
  AEGIS_EV_FILE_BLOCK,
  AEGIS_EV_FILE_BLOCK_V2,
  AEGIS_EV_OPEN,
  AEGIS_EV_OPEN_V2,
  AEGIS_EV_TAMPER_BLOCK,
  AEGIS_EV_TAMPER_BLOCK_V1,
  AEGIS_GUARD_AGENT,
  AEGIS_HOOK_SELF_TASK_KILL,
  AEGIS_TAMPER_SIGNAL,
} from "../bpf/abi_gen.ts";
import { recordToEvent } from "./json.ts";
import {
  decodeRecord,
  forEachRecord,
  type KernelRecord,
  type RecordError,
  splitArgs,
} from "./decode.ts";

const H = ABI_LAYOUT.structs.aegis_ev_hdr.fields;
const P = ABI_LAYOUT.structs.aegis_ev_proc.fields;
const OPEN = ABI_LAYOUT.structs.aegis_ev_open;
const EXEC = ABI_LAYOUT.structs.aegis_ev_exec;

function header(dv: DataView, kind: number, version: number, size: number): void {
  dv.setBigUint64(H.ktime_ns.offset, 123456789n, true);
  dv.setUint32(H.size.offset, size, true);
  dv.setUint16(H.kind.offset, kind, true);
  dv.setUint16(H.version.offset, version, true);
}

function writeProc(b: Uint8Array, dv: DataView, base: number): void {
  dv.setBigUint64(base + P.cgid.offset, 4242n, true);
  dv.setBigUint64(base + P.start_time.offset, 99n, true);
  dv.setBigUint64(base + P.parent_start_time.offset, 77n, true);
  dv.setUint32(base + P.pid.offset, 100, true);
  dv.setUint32(base + P.tid.offset, 101, true);
  dv.setUint32(base + P.ppid.offset, 1, true);
  dv.setUint32(base + P.uid.offset, 1000, true);
  b.set(new TextEncoder().encode("bash"), base + P.comm.offset);
}

function openRecord(path: string): Uint8Array {
  const b = new Uint8Array(OPEN.size);
  const dv = new DataView(b.buffer);
  header(dv, AEGIS_EV_OPEN, AEGIS_EV_OPEN_V2, OPEN.size);
  writeProc(b, dv, OPEN.fields.proc.offset);
  dv.setInt32(OPEN.fields.flags.offset, 0o2101, true);
  dv.setInt32(OPEN.fields.dfd.offset, -100, true);
  b.set(new TextEncoder().encode(path), OPEN.fields.path.offset);
  return b;
}

function decode(b: Uint8Array): KernelRecord | RecordError {
  return decodeRecord(new DataView(b.buffer, b.byteOffset, b.byteLength), b, 0, b.byteLength);
}

Deno.test("decode: open record", () => {
  deepStrictEqual(decode(openRecord("/etc/shadow")), {
    kind: "open",
    ktimeNs: 123456789,
    cgid: 4242,
    startTime: 99,
    parentStartTime: 77,
    pid: 100,
    tid: 101,
    ppid: 1,
    uid: 1000,
    comm: "bash",
    flags: 0o2101,
    dfd: -100,
    path: "/etc/shadow",
  });
});

Deno.test("decode: exec record", () => {
  const b = new Uint8Array(EXEC.size);
  const dv = new DataView(b.buffer);
  header(dv, AEGIS_EV_EXEC, AEGIS_EV_EXEC_V2, EXEC.size);
  writeProc(b, dv, EXEC.fields.proc.offset);
  const r = decode(b);
  strictEqual("kind" in r && r.kind, "exec");
});

Deno.test("decode: a path filling the field is cut at the field, not read past it", () => {
  const long = "/" + "a".repeat(200);
  const b = openRecord(long.slice(0, OPEN.fields.path.size));
  const r = decode(b);
  strictEqual("path" in r && r.path.length, OPEN.fields.path.size);
});

Deno.test("decode: non-ASCII path bytes decode as UTF-8", () => {
  const r = decode(openRecord("/tmp/é"));
  strictEqual("path" in r && r.path, "/tmp/é");
});

Deno.test("decode: header checks reject unknown kind, bad version, bad size, short", () => {
  const b = openRecord("/x");
  const dv = new DataView(b.buffer);
  dv.setUint16(H.kind.offset, 999, true);
  deepStrictEqual(decode(b), { error: "unknown_kind", kind: 999 });
  dv.setUint16(H.kind.offset, AEGIS_EV_OPEN, true);
  dv.setUint16(H.version.offset, 7, true);
  deepStrictEqual(decode(b), { error: "bad_version", kind: AEGIS_EV_OPEN, version: 7 });
  dv.setUint16(H.version.offset, AEGIS_EV_OPEN_V2, true);
  dv.setUint32(H.size.offset, 12, true);
  deepStrictEqual(decode(b), { error: "bad_size", kind: AEGIS_EV_OPEN, size: 12, len: OPEN.size });
  deepStrictEqual(decode(b.subarray(0, 8)), { error: "short", len: 8 });
});

Deno.test("forEachRecord: walks framed records, reports a cut frame", () => {
  const recs = [openRecord("/a"), openRecord("/b"), openRecord("/c")];
  const frame = (r: Uint8Array) => 8 + ((r.length + 7) & ~7);
  const total = recs.reduce((n, r) => n + frame(r), 0);
  const buf = new Uint8Array(total);
  const dv = new DataView(buf.buffer);
  let off = 0;
  for (const r of recs) {
    dv.setUint32(off, r.length, true);
    buf.set(r, off + 8);
    off += frame(r);
  }
  const paths: string[] = [];
  const errors: RecordError[] = [];
  const n = forEachRecord(
    buf,
    dv,
    total,
    (r) => r.kind === "open" && paths.push(r.path),
    (e) => errors.push(e),
  );
  strictEqual(n, 3);
  deepStrictEqual(paths, ["/a", "/b", "/c"]);
  strictEqual(errors.length, 0);
  // a batch whose last frame claims more bytes than were written
  forEachRecord(buf, dv, total - 8, () => {}, (e) => errors.push(e));
  deepStrictEqual(errors, [{ error: "short", len: recs[2].length }]);
});

Deno.test("decode: interned strings never mix up values that share a prefix or a hash bucket", () => {
  const names = ["/etc/passwd", "/etc/passwe", "/etc/passwd2", "/etc/pass", "", "/a/b/c/d/e/f/g/h"];
  for (let round = 0; round < 3; round++) {
    for (const p of names) {
      const r = decode(openRecord(p));
      strictEqual("path" in r && r.path, p);
    }
  }
  // junk after the terminating NUL does not change the value
  const b = openRecord("/etc/passwd");
  b[OPEN.fields.path.offset + 12] = 0x41;
  const r = decode(b);
  strictEqual("path" in r && r.path, "/etc/passwd");
});

Deno.test("decode: many distinct values (past the cache bound) all decode right", () => {
  for (let i = 0; i < 20000; i++) {
    const p = `/tmp/f${i}`;
    const r = decode(openRecord(p));
    if (!("path" in r) || r.path !== p) throw new Error(`record ${i}: ${JSON.stringify(r)}`);
  }
});

Deno.test("decode: u64 values are numbers up to 2^53 - 1, exact bigints beyond", () => {
  const b = openRecord("/x");
  const dv = new DataView(b.buffer);
  dv.setBigUint64(H.ktime_ns.offset, 2n ** 53n - 1n, true);
  dv.setBigUint64(OPEN.fields.proc.offset + P.start_time.offset, 5n * 2n ** 32n + 7n, true);
  dv.setBigUint64(OPEN.fields.proc.offset + P.cgid.offset, 2n ** 64n - 1n, true);
  dv.setBigUint64(OPEN.fields.proc.offset + P.parent_start_time.offset, 2n ** 53n, true);
  const r = decode(b);
  strictEqual("ktimeNs" in r && r.ktimeNs, Number.MAX_SAFE_INTEGER);
  strictEqual("startTime" in r && r.startTime, 5 * 2 ** 32 + 7);
  strictEqual("cgid" in r && r.cgid, 2n ** 64n - 1n);
  strictEqual("parentStartTime" in r && r.parentStartTime, 2n ** 53n);
});

Deno.test("decode: a path filling a short field is not taken for a longer path with that prefix", () => {
  // open records carry 64 bytes of path, block records 256: a cached 64-byte value with no NUL
  // is only a prefix (a fuzzer found the longer path decoded as the shorter one)
  const FB = ABI_LAYOUT.structs.aegis_ev_file_block;
  const short = "9".repeat(OPEN.fields.path.size);
  const long = "9".repeat(OPEN.fields.path.size + 36);
  const o = decode(openRecord(short));
  strictEqual((o as { path: string }).path, short);
  const b = new Uint8Array(FB.size);
  const dv = new DataView(b.buffer);
  header(dv, AEGIS_EV_FILE_BLOCK, AEGIS_EV_FILE_BLOCK_V2, FB.size);
  writeProc(b, dv, FB.fields.proc.offset);
  b.set(new TextEncoder().encode(long), FB.fields.path.offset);
  const r = decode(b);
  strictEqual((r as { kind: string }).kind, "file_block", JSON.stringify(r));
  strictEqual((r as { path: string }).path, long);
  // and back: the short field still decodes as itself
  strictEqual((decode(openRecord(short)) as { path: string }).path, short);
});

Deno.test("decode: exec_argv record: NUL-separated arguments, cut when the area was longer", () => {
  const A = ABI_LAYOUT.structs.aegis_ev_exec_argv;
  const b = new Uint8Array(A.size);
  const dv = new DataView(b.buffer);
  header(dv, AEGIS_EV_EXEC_ARGV, AEGIS_EV_EXEC_ARGV_V1, A.size);
  writeProc(b, dv, A.fields.proc.offset);
  const args = new TextEncoder().encode("/bin/echo\0two words\0\0last");
  b.set(args, A.fields.args.offset);
  dv.setUint32(A.fields.len.offset, args.length, true);
  dv.setUint32(A.fields.total.offset, 5000, true);
  const r = decode(b);
  if (!("kind" in r) || r.kind !== "exec_argv") throw new Error(JSON.stringify(r));
  deepStrictEqual(r.argv, ["/bin/echo", "two words", "", "last"]);
  strictEqual(r.totalBytes, 5000);
  strictEqual(r.truncated, true);
  strictEqual(r.pid, 100);
  // a len beyond the field is clamped to it; whole and readable: not truncated
  dv.setUint32(A.fields.len.offset, 1 << 20, true);
  dv.setUint32(A.fields.total.offset, A.fields.args.size, true);
  const big = decode(b);
  if (!("kind" in big) || big.kind !== "exec_argv") throw new Error("kind");
  strictEqual(big.truncated, false);
  // not UTF-8: replaced, never thrown
  deepStrictEqual(splitArgs(new Uint8Array([0x61, 0xff, 0, 0x62])), ["a\ufffd", "b"]);
  // variable size: only the used part of args is in the ring (80 + len, rounded up to 8)
  const used = new TextEncoder().encode("ls\0-l\0");
  const short = new Uint8Array(A.fields.args.offset + 8);
  const sdv = new DataView(short.buffer);
  header(sdv, AEGIS_EV_EXEC_ARGV, AEGIS_EV_EXEC_ARGV_V1, short.length);
  writeProc(short, sdv, A.fields.proc.offset);
  short.set(used, A.fields.args.offset);
  sdv.setUint32(A.fields.len.offset, 900, true); // more than the record holds: clamped to it
  sdv.setUint32(A.fields.total.offset, used.length, true);
  const s = decode(short);
  if (!("kind" in s) || s.kind !== "exec_argv") throw new Error(JSON.stringify(s));
  // (the clamp reads the zero padding too: empty arguments, nothing outside the record)
  deepStrictEqual(s.argv, ["ls", "-l", "", ""]);
  // sizes that are not 80 + 8k up to the whole struct are refused
  for (const bad of [A.fields.args.offset - 8, A.fields.args.offset + 4, A.size + 8]) {
    const x = new Uint8Array(Math.max(bad, 16));
    const xdv = new DataView(x.buffer);
    header(xdv, AEGIS_EV_EXEC_ARGV, AEGIS_EV_EXEC_ARGV_V1, bad);
    const e = decodeRecord(xdv, x, 0, x.length);
    strictEqual("error" in e && e.error, "bad_size", `size ${bad}`);
  }
  deepStrictEqual(splitArgs(new Uint8Array([])), []);
});

Deno.test("splitArgs: one decode of the block equals decoding each NUL-separated part", () => {
  const td = new TextDecoder();
  const byParts = (b: Uint8Array): string[] => {
    const out: string[] = [];
    let start = 0;
    for (let i = 0; i < b.length; i++) {
      if (b[i] === 0) {
        out.push(td.decode(b.subarray(start, i)));
        start = i + 1;
      }
    }
    if (start < b.length) out.push(td.decode(b.subarray(start)));
    return out;
  };
  // bytes biased to NULs and to the edges of multi-byte UTF-8 sequences
  const pool = [0, 0, 0x61, 0x7f, 0x80, 0xbf, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0xff];
  let seed = 7;
  const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
  for (let t = 0; t < 5_000; t++) {
    const b = new Uint8Array(rnd(24));
    for (let i = 0; i < b.length; i++) b[i] = pool[rnd(pool.length)];
    deepStrictEqual(splitArgs(b), byParts(b), `bytes ${Array.from(b)}`);
  }
});

Deno.test("decode: tamper_block record (run --self-protect), and its event", () => {
  const T = ABI_LAYOUT.structs.aegis_ev_tamper_block;
  const b = new Uint8Array(T.size);
  const dv = new DataView(b.buffer);
  header(dv, AEGIS_EV_TAMPER_BLOCK, AEGIS_EV_TAMPER_BLOCK_V1, T.size);
  writeProc(b, dv, T.fields.proc.offset);
  dv.setBigUint64(T.fields.target_cgid.offset, 2n ** 60n, true);
  dv.setUint32(T.fields.target.offset, 4321, true);
  dv.setUint32(T.fields.detail.offset, 9, true);
  b[T.fields.op.offset] = AEGIS_TAMPER_SIGNAL;
  b[T.fields.guard.offset] = AEGIS_GUARD_AGENT;
  b[T.fields.action.offset] = 1;
  b[T.fields.hook.offset] = AEGIS_HOOK_SELF_TASK_KILL;
  const r = decode(b);
  if ("error" in r || r.kind !== "tamper_block") throw new Error(JSON.stringify(r));
  strictEqual(r.target, 4321);
  strictEqual(r.targetCgid, 2n ** 60n, "a u64 past 2^53 stays exact");
  strictEqual(r.name, "");
  const ev = recordToEvent(r);
  deepStrictEqual(
    [ev.type, ev.action, ev.hook, ev.op, ev.guard, ev.detail, ev.pid, ev.comm, "name" in ev],
    ["tamper_block", "BLOCK", "self_task_kill", "signal", "agent", 9, 100, "bash", false],
  );
  // a record of the wrong size is rejected, not decoded
  deepStrictEqual(decode(b.subarray(0, T.size - 8)), {
    error: "bad_size",
    kind: AEGIS_EV_TAMPER_BLOCK,
    size: T.size,
    len: T.size - 8,
  });
});
