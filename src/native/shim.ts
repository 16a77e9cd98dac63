/**
 * Typed handles over the libbpf shim. This folder is the only place that
 * touches Deno.dlopen / Deno.UnsafePointer.
 *
 * Every handle implements [Symbol.dispose]; close() is idempotent. Closing
 * the Shim closes every handle it still owns, then the library.
 *
 * @module
 */
import { AegisError, NativeCallError, UsageError, VerifierError } from "../errors.ts";
import { SHIM_API_VERSION, type ShimLibrary, symbols } from "./symbols.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const LOG_CAP = 64 * 1024 + 64;
const NAME_CAP = 256;

/** NUL-terminated bytes of a string for a `const char *` argument. */
function cstr(s: string): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) {
    throw new UsageError(`NUL byte in native string argument ${JSON.stringify(s)}`);
  }
  return enc.encode(s + "\0");
}

function fromC(buf: Uint8Array, len: number): string {
  return dec.decode(buf.subarray(0, Math.max(0, Math.min(len, buf.length))));
}

interface Closable {
  close(): void;
}

/** The loaded shim library. */
export class Shim implements Disposable {
  readonly path: string;
  #lib: ShimLibrary | null;
  #owned = new Set<Closable>();

  private constructor(path: string, lib: ShimLibrary) {
    this.path = path;
    this.#lib = lib;
  }

  /** dlopen the shim at `path` and check its API version. */
  static open(path: string): Shim {
    let lib: ShimLibrary;
    try {
      lib = Deno.dlopen(path, symbols);
    } catch (e) {
      throw new AegisError("SHIM_LOAD_FAILED", `Cannot load the libbpf shim "${path}": ${e}`, {
        cause: e,
      });
    }
    const shim = new Shim(path, lib);
    const api = lib.symbols.aegis_shim_api_version();
    if (api !== SHIM_API_VERSION) {
      shim.close();
      throw new AegisError(
        "ABI_MISMATCH",
        `The shim "${path}" has API version ${api}, this program needs ${SHIM_API_VERSION}. Rebuild with "deno task build".`,
      );
    }
    return shim;
  }

  get lib(): ShimLibrary["symbols"] {
    if (!this.#lib) throw new AegisError("CLOSED", "The libbpf shim is closed");
    return this.#lib.symbols;
  }

  /** Throws NativeCallError when rc < 0; returns rc otherwise. */
  check(call: string, rc: number, detail = ""): number {
    if (rc >= 0) return rc;
    throw new NativeCallError(call, -rc, detail, this.readLog());
  }

  /** libbpf version linked into the shim, "major.minor". */
  libbpfVersion(): string {
    const v = this.lib.aegis_libbpf_version();
    return `${v >> 16}.${v & 0xffff}`;
  }

  /** Build id recorded in the shim at build time. */
  buildId(): string {
    const p = this.lib.aegis_shim_build_id();
    return p ? new Deno.UnsafePointerView(p).getCString() : "";
  }

  /** The file the dynamic loader really mapped this shim from. */
  loadedPath(): string {
    const buf = new Uint8Array(4096);
    return fromC(buf, this.check("aegis_shim_path", this.lib.aegis_shim_path(buf, buf.length)));
  }

  apiVersion(): number {
    return this.lib.aegis_shim_api_version();
  }

  /** Set libbpf's kept log level: 0 warn, 1 info, 2 debug. */
  setLogLevel(level: 0 | 1 | 2): void {
    this.lib.aegis_log_set_level(level);
  }

  /** Take (and clear) libbpf's buffered log text. */
  readLog(): string {
    if (!this.#lib) return "";
    const buf = new Uint8Array(LOG_CAP);
    const n = this.#lib.symbols.aegis_log_read(buf, buf.length);
    return n > 0 ? fromC(buf, n) : "";
  }

  numPossibleCpus(): number {
    return this.check("aegis_num_possible_cpus", this.lib.aegis_num_possible_cpus());
  }

  /** Does the running kernel's BTF have FUNC `name`? */
  btfHasFunc(name: string): boolean {
    return this.check("aegis_btf_has_func", this.lib.aegis_btf_has_func(cstr(name)), name) === 1;
  }

  /**
   * The kernel's Landlock ABI version (>= 1), or the negative errno of
   * landlock_create_ruleset(…, LANDLOCK_CREATE_RULESET_VERSION): -ENOSYS no
   * Landlock (or the call is filtered), -EOPNOTSUPP built in but disabled.
   */
  landlockAbi(): number {
    return this.lib.aegis_landlock_abi();
  }

  /**
   * CLOCK_REALTIME minus CLOCK_MONOTONIC (the clock of bpf_ktime_get_ns()),
   * ns: a record's `ktime_ns` plus this is its wall-clock time. Read once
   * per agent start (a later step of the wall clock is not followed).
   */
  clockOffsetNs(): bigint {
    const out = new BigInt64Array(1);
    const rc = this.lib.aegis_clock_offset_ns(new Uint8Array(out.buffer));
    if (rc < 0) throw new NativeCallError("aegis_clock_offset_ns", -rc, "", this.readLog());
    return out[0];
  }

  /**
   * Turn no_new_privs on for the calling thread (with `set`; it cannot be
   * turned off) and say what the kernel then holds: true on, false off.
   */
  noNewPrivs(set: boolean): boolean {
    const rc = this.lib.aegis_no_new_privs(set ? 1 : 0);
    if (rc < 0) throw new NativeCallError("aegis_no_new_privs", -rc, "", this.readLog());
    return rc === 1;
  }

  /**
   * Install the daemon's seccomp allow list on every thread (ffi/aegis_seccomp_list.h):
   * "enforce" refuses other calls with ENOSYS, "log" only has the kernel log
   * them. Returns how many calls the list allows; throws with the errno
   * (ENOTSUP: no list for this architecture). It cannot be removed.
   */
  seccompInstall(mode: "enforce" | "log"): number {
    const rc = this.lib.aegis_seccomp_install(mode === "enforce" ? 1 : 2);
    if (rc < 0) throw new NativeCallError("aegis_seccomp_install", -rc, mode, this.readLog());
    return rc;
  }

  /**
   * Keep only the capabilities of `keep` (bit n = capability n) on every
   * thread (bounding, effective, permitted; inheritable and ambient
   * emptied). Returns how many threads were asked; throws with the errno.
   * It cannot be undone.
   */
  capsLimit(keep: bigint): number {
    const threads = new Uint32Array(1);
    const rc = this.lib.aegis_caps_limit(keep, new Uint8Array(threads.buffer));
    if (rc < 0) throw new NativeCallError("aegis_caps_limit", -rc, "", this.readLog());
    return threads[0];
  }

  /** Open a BPF ELF object from memory. */
  openObject(bytes: Uint8Array<ArrayBuffer>, name: string): NativeObject {
    const err = new Int32Array(1);
    const p = this.lib.aegis_obj_open_mem(bytes, BigInt(bytes.byteLength), cstr(name), err);
    if (p === null) {
      throw new NativeCallError("aegis_obj_open_mem", -err[0] || 22, name, this.readLog());
    }
    const obj = new NativeObject(this, p);
    this.#owned.add(obj);
    return obj;
  }

  /** Map a BPF ring buffer for batch consumption. */
  openRing(mapFd: number): NativeRing {
    const err = new Int32Array(1);
    const p = this.lib.aegis_ring_open(mapFd, err);
    if (p === null) throw new NativeCallError("aegis_ring_open", -err[0] || 22, "", this.readLog());
    const ring = new NativeRing(this, p);
    this.#owned.add(ring);
    return ring;
  }

  /** @internal called by handles when they close. */
  release(h: Closable): void {
    this.#owned.delete(h);
  }

  // ---- maps by fd -------------------------------------------------------

  /** The kernel id of a map, link or program fd (bpf_obj_get_info_by_fd). */
  objId(fd: number): number {
    const v = new Uint32Array(1);
    this.check("aegis_obj_id", this.lib.aegis_obj_id(fd, new Uint8Array(v.buffer)));
    return v[0];
  }

  mapInfo(fd: number): { type: number; keySize: number; valueSize: number; maxEntries: number } {
    const v = new Uint32Array(4);
    const b = new Uint8Array(v.buffer);
    this.check(
      "aegis_map_info",
      this.lib.aegis_map_info(
        fd,
        b.subarray(0, 4),
        b.subarray(4, 8),
        b.subarray(8, 12),
        b.subarray(12, 16),
      ),
    );
    return { type: v[0], keySize: v[1], valueSize: v[2], maxEntries: v[3] };
  }

  /** Look up `key`; fills `value` and returns true, or false when absent. */
  mapLookup(fd: number, key: Uint8Array<ArrayBuffer>, value: Uint8Array<ArrayBuffer>): boolean {
    const rc = this.lib.aegis_map_lookup(fd, key, value);
    if (rc === -2) return false;
    this.check("aegis_map_lookup", rc);
    return true;
  }

  mapUpdate(
    fd: number,
    key: Uint8Array<ArrayBuffer>,
    value: Uint8Array<ArrayBuffer>,
    flags = 0n,
  ): void {
    this.check("aegis_map_update", this.lib.aegis_map_update(fd, key, value, flags));
  }

  /** Delete `key`; returns false when it was absent. */
  mapDelete(fd: number, key: Uint8Array<ArrayBuffer>): boolean {
    const rc = this.lib.aegis_map_delete(fd, key);
    if (rc === -2) return false;
    this.check("aegis_map_delete", rc);
    return true;
  }

  /** Next key after `key` (null: the first) into `next`; false at the end. */
  mapNextKey(
    fd: number,
    key: Uint8Array<ArrayBuffer> | null,
    next: Uint8Array<ArrayBuffer>,
  ): boolean {
    const rc = this.lib.aegis_map_next_key(fd, key, next);
    if (rc === -2) return false;
    this.check("aegis_map_next_key", rc);
    return true;
  }

  /** Batch update `count` packed keys/values; returns how many were written. */
  mapUpdateBatch(
    fd: number,
    keys: Uint8Array<ArrayBuffer>,
    values: Uint8Array<ArrayBuffer>,
    count: number,
    flags = 0n,
  ): number {
    const c = new Uint32Array([count]);
    const rc = this.lib.aegis_map_update_batch(fd, keys, values, new Uint8Array(c.buffer), flags);
    this.check("aegis_map_update_batch", rc, `${c[0]} of ${count} written`);
    return c[0];
  }

  /** Batch delete; returns how many keys were really deleted. */
  mapDeleteBatch(fd: number, keys: Uint8Array<ArrayBuffer>, count: number): number {
    const c = new Uint32Array([count]);
    const rc = this.lib.aegis_map_delete_batch(fd, keys, new Uint8Array(c.buffer));
    this.check("aegis_map_delete_batch", rc, `${c[0]} of ${count} deleted`);
    return c[0];
  }

  /**
   * Every key (and with `values`, every value) of a map in one call, packed
   * into the buffers; returns how many. ENOSPC when the map holds more than
   * the buffers' room (`room` entries).
   */
  mapDump(
    fd: number,
    keys: Uint8Array<ArrayBuffer>,
    values: Uint8Array<ArrayBuffer> | null,
    room: number,
  ): number {
    const c = new Uint32Array([room]);
    const rc = this.lib.aegis_map_dump(fd, keys, values, new Uint8Array(c.buffer));
    this.check("aegis_map_dump", rc, `${c[0]} of at most ${room} copied`);
    return c[0];
  }

  /** Open a pinned map/prog/link; the caller owns the fd (closeFd). */
  getPinned(path: string): number {
    return this.check("aegis_obj_get_pinned", this.lib.aegis_obj_get_pinned(cstr(path)), path);
  }

  pinFd(fd: number, path: string): void {
    this.check("aegis_fd_pin", this.lib.aegis_fd_pin(fd, cstr(path)), path);
  }

  closeFd(fd: number): void {
    this.check("aegis_fd_close", this.lib.aegis_fd_close(fd));
  }

  /**
   * One datagram to the service manager's notification socket (`socket`:
   * NOTIFY_SOCKET, a path or "@abstract"); throws NativeCallError.
   */
  sdNotify(socket: string, message: string): void {
    const msg = enc.encode(message);
    this.check(
      "aegis_sd_notify",
      this.lib.aegis_sd_notify(cstr(socket), msg, msg.byteLength),
      socket,
    );
  }

  /** Close every handle still open, then the library. Safe to call twice. */
  close(): void {
    if (!this.#lib) return;
    for (const h of [...this.#owned]) h.close();
    this.#lib.close();
    this.#lib = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A libbpf bpf_object (opened, then loaded). */
export class NativeObject implements Disposable {
  #shim: Shim;
  #p: Deno.PointerValue;

  /** @internal */
  constructor(shim: Shim, p: Deno.PointerValue) {
    this.#shim = shim;
    this.#p = p;
  }

  get #h(): Deno.PointerValue {
    if (this.#p === null) throw new AegisError("CLOSED", "The BPF object is closed");
    return this.#p;
  }

  #names(
    count: (p: Deno.PointerValue) => number,
    get: "aegis_obj_prog_name" | "aegis_obj_map_name" | "aegis_obj_prog_section",
  ): string[] {
    const n = this.#shim.check("count", count(this.#h));
    const buf = new Uint8Array(NAME_CAP);
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const len = this.#shim.check(get, this.#shim.lib[get](this.#h, i, buf, buf.length));
      out.push(fromC(buf, len));
    }
    return out;
  }

  programNames(): string[] {
    return this.#names((p) => this.#shim.lib.aegis_obj_prog_count(p), "aegis_obj_prog_name");
  }

  programSections(): string[] {
    return this.#names((p) => this.#shim.lib.aegis_obj_prog_count(p), "aegis_obj_prog_section");
  }

  mapNames(): string[] {
    return this.#names((p) => this.#shim.lib.aegis_obj_map_count(p), "aegis_obj_map_name");
  }

  setAutoload(prog: string, on: boolean): void {
    this.#shim.check(
      "aegis_obj_prog_set_autoload",
      this.#shim.lib.aegis_obj_prog_set_autoload(this.#h, cstr(prog), on ? 1 : 0),
      prog,
    );
  }

  setMaxEntries(map: string, n: number): void {
    this.#shim.check(
      "aegis_obj_map_set_max_entries",
      this.#shim.lib.aegis_obj_map_set_max_entries(this.#h, cstr(map), n),
      `${map}=${n}`,
    );
  }

  setPinPath(map: string, path: string): void {
    this.#shim.check(
      "aegis_obj_map_set_pin_path",
      this.#shim.lib.aegis_obj_map_set_pin_path(this.#h, cstr(map), cstr(path)),
      `${map} -> ${path}`,
    );
  }

  /** Load: a verifier rejection becomes a VerifierError with the log. */
  load(): void {
    this.#shim.readLog(); // start from a clean log
    const rc = this.#shim.lib.aegis_obj_load(this.#h);
    if (rc >= 0) return;
    const log = this.#shim.readLog();
    const lines = log.split("\n");
    const m = /prog '([^']+)': (?:BPF program load failed|failed to load)/.exec(log);
    if (m && (-rc === 22 || -rc === 13 || -rc === 4007)) throw new VerifierError(m[1], -rc, lines);
    throw new NativeCallError("aegis_obj_load", -rc, m ? `program "${m[1]}"` : "", log);
  }

  /** Attach all loaded programs; one result per program (index order). */
  attachAll(): Int32Array {
    const n = this.#shim.check(
      "aegis_obj_prog_count",
      this.#shim.lib.aegis_obj_prog_count(this.#h),
    );
    const res = new Int32Array(Math.max(n, 1));
    this.#shim.check(
      "aegis_obj_attach_all",
      this.#shim.lib.aegis_obj_attach_all(this.#h, new Uint8Array(res.buffer), n),
    );
    return res.subarray(0, n);
  }

  attach(prog: string): void {
    this.#shim.check(
      "aegis_obj_attach_prog",
      this.#shim.lib.aegis_obj_attach_prog(this.#h, cstr(prog)),
      prog,
    );
  }

  detach(prog: string): void {
    this.#shim.check(
      "aegis_obj_detach_prog",
      this.#shim.lib.aegis_obj_detach_prog(this.#h, cstr(prog)),
      prog,
    );
  }

  pinLink(prog: string, path: string): void {
    this.#shim.check(
      "aegis_obj_link_pin",
      this.#shim.lib.aegis_obj_link_pin(this.#h, cstr(prog), cstr(path)),
      `${prog} -> ${path}`,
    );
  }

  unpinLink(prog: string): void {
    this.#shim.check(
      "aegis_obj_link_unpin",
      this.#shim.lib.aegis_obj_link_unpin(this.#h, cstr(prog)),
      prog,
    );
  }

  pinMap(map: string, path: string): void {
    this.#shim.check(
      "aegis_obj_map_pin",
      this.#shim.lib.aegis_obj_map_pin(this.#h, cstr(map), cstr(path)),
      `${map} -> ${path}`,
    );
  }

  unpinMap(map: string, path: string): void {
    this.#shim.check(
      "aegis_obj_map_unpin",
      this.#shim.lib.aegis_obj_map_unpin(this.#h, cstr(map), cstr(path)),
      `${map} -> ${path}`,
    );
  }

  mapFd(map: string): number {
    return this.#shim.check(
      "aegis_obj_map_fd",
      this.#shim.lib.aegis_obj_map_fd(this.#h, cstr(map)),
      map,
    );
  }

  programFd(prog: string): number {
    return this.#shim.check(
      "aegis_obj_prog_fd",
      this.#shim.lib.aegis_obj_prog_fd(this.#h, cstr(prog)),
      prog,
    );
  }

  close(): void {
    if (this.#p === null) return;
    this.#shim.lib.aegis_obj_close(this.#p);
    this.#p = null;
    this.#shim.release(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A mapped ring buffer drained in batches into a caller-owned buffer. */
export class NativeRing implements Disposable {
  #shim: Shim;
  #p: Deno.PointerValue;
  #count = new Uint32Array(1);
  #countBytes = new Uint8Array(this.#count.buffer);

  /** @internal */
  constructor(shim: Shim, p: Deno.PointerValue) {
    this.#shim = shim;
    this.#p = p;
  }

  get #h(): Deno.PointerValue {
    if (this.#p === null) throw new AegisError("CLOSED", "The ring buffer is closed");
    return this.#p;
  }

  /**
   * Copy committed records into `out` (format: u32 len, u32 0, data,
   * padding to 8). Returns bytes written and the record count.
   */
  drain(out: Uint8Array<ArrayBuffer>): { bytes: number; records: number } {
    const n = this.#shim.lib.aegis_ring_drain(this.#h, out, out.byteLength, this.#countBytes);
    this.#shim.check("aegis_ring_drain", n);
    return { bytes: n, records: this.#count[0] };
  }

  /** Bytes committed and not yet consumed. */
  available(): number {
    return Number(this.#shim.lib.aegis_ring_avail(this.#h));
  }

  /**
   * Wait (off the main thread) until the kernel wakes the ring (edge-
   * triggered: telemetry submitted without a wake-up does not end it); false
   * on timeout.
   */
  async wait(timeoutMs: number): Promise<boolean> {
    const rc = await this.#shim.lib.aegis_ring_wait(this.#h, timeoutMs);
    return this.#shim.check("aegis_ring_wait", rc) === 1;
  }

  close(): void {
    if (this.#p === null) return;
    this.#shim.lib.aegis_ring_close(this.#p);
    this.#p = null;
    this.#shim.release(this);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
