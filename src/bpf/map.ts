/**
 * A BPF map by fd, with its key/value sizes checked on every call.
 *
 * @module
 */
import { AegisError, NativeCallError } from "../errors.ts";
import type { Shim } from "../native/mod.ts";

export const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
export const BPF_MAP_TYPE_PERCPU_HASH = 5;
export const BPF_MAP_TYPE_LRU_PERCPU_HASH = 10;
export const BPF_ANY = 0n;
export const BPF_NOEXIST = 1n;
export const BPF_EXIST = 2n;

/** A map fd plus its geometry. Does not own the fd unless `owned`. */
export class BpfMap {
  readonly name: string;
  readonly fd: number;
  readonly type: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  /** Slots per value: possible CPUs for per-CPU maps, else 1. */
  readonly slots: number;
  #shim: Shim;

  constructor(shim: Shim, name: string, fd: number) {
    const info = shim.mapInfo(fd);
    this.#shim = shim;
    this.name = name;
    this.fd = fd;
    this.type = info.type;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.maxEntries = info.maxEntries;
    const perCpu = [
      BPF_MAP_TYPE_PERCPU_ARRAY,
      BPF_MAP_TYPE_PERCPU_HASH,
      BPF_MAP_TYPE_LRU_PERCPU_HASH,
    ]
      .includes(info.type);
    this.slots = perCpu ? shim.numPossibleCpus() : 1;
  }

  /** Bytes of one lookup result (per-CPU values are 8-byte aligned slots). */
  get valueBytes(): number {
    return this.slots === 1 ? this.valueSize : this.slots * ((this.valueSize + 7) & ~7);
  }

  #checkKey(key: Uint8Array): void {
    if (key.byteLength !== this.keySize) {
      throw new AegisError(
        "ABI_MISMATCH",
        `map ${this.name}: key is ${key.byteLength} bytes, the map wants ${this.keySize}`,
      );
    }
  }

  lookup(key: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> | null {
    this.#checkKey(key);
    const v = new Uint8Array(this.valueBytes);
    return this.#shim.mapLookup(this.fd, key, v) ? v : null;
  }

  update(key: Uint8Array<ArrayBuffer>, value: Uint8Array<ArrayBuffer>, flags = BPF_ANY): void {
    this.#checkKey(key);
    if (value.byteLength !== this.valueBytes) {
      throw new AegisError(
        "ABI_MISMATCH",
        `map ${this.name}: value is ${value.byteLength} bytes, the map wants ${this.valueBytes}`,
      );
    }
    this.#shim.mapUpdate(this.fd, key, value, flags);
  }

  delete(key: Uint8Array<ArrayBuffer>): boolean {
    this.#checkKey(key);
    return this.#shim.mapDelete(this.fd, key);
  }

  /**
   * Write every key/value pair in one native call (the kernel's batch
   * update, or the shim's loop of single updates for map types without
   * one), in order. Sizes are checked first, so a wrong one writes
   * nothing; a kernel refusal (e.g. E2BIG: map full) throws
   * NativeCallError after the pairs before it were written.
   */
  updateBatch(
    keys: readonly Uint8Array[],
    values: readonly Uint8Array[],
    flags = BPF_ANY,
  ): void {
    if (keys.length !== values.length) {
      throw new AegisError(
        "ABI_MISMATCH",
        `map ${this.name}: ${keys.length} keys but ${values.length} values`,
      );
    }
    if (keys.length === 0) return;
    const kb = this.#pack(keys, this.keySize, "key");
    const vb = this.#pack(values, this.valueBytes, "value");
    this.#shim.mapUpdateBatch(this.fd, kb, vb, keys.length, flags);
  }

  /** Delete every key in one native call; returns how many were really deleted. */
  deleteBatch(keys: readonly Uint8Array[]): number {
    if (keys.length === 0) return 0;
    return this.#shim.mapDeleteBatch(this.fd, this.#pack(keys, this.keySize, "key"), keys.length);
  }

  #pack(items: readonly Uint8Array[], size: number, what: string): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(items.length * size);
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (it.byteLength !== size) {
        throw new AegisError(
          "ABI_MISMATCH",
          `map ${this.name}: ${what} is ${it.byteLength} bytes, the map wants ${size}`,
        );
      }
      out.set(it, i * size);
    }
    return out;
  }

  /** All keys (snapshot in one native call; a map changing meanwhile may skip or repeat). */
  keys(): Uint8Array<ArrayBuffer>[] {
    return this.#dump(false).keys;
  }

  /** All keys and their values (snapshot in one native call, as keys()). */
  entries(): { keys: Uint8Array<ArrayBuffer>[]; values: Uint8Array<ArrayBuffer>[] } {
    return this.#dump(true);
  }

  /**
   * How many entries the map holds now: the same native dump as keys(), but
   * no key becomes an object (the once-every-10-s map pressure check of a
   * 65k-rule map made 65k of them).
   */
  count(): number {
    return this.#raw(false).n;
  }

  #raw(withValues: boolean): {
    kb: Uint8Array<ArrayBuffer>;
    vb: Uint8Array<ArrayBuffer> | null;
    n: number;
  } {
    // small first (most rule maps are nearly empty), then all a hash map can hold
    let room = Math.min(this.maxEntries + 1, 1024);
    for (;;) {
      const kb = new Uint8Array(room * this.keySize);
      const vb = withValues ? new Uint8Array(room * this.valueBytes) : null;
      try {
        return { kb, vb, n: this.#shim.mapDump(this.fd, kb, vb, room) };
      } catch (e) {
        const full = e instanceof NativeCallError && e.errno === 28; // ENOSPC
        if (!full || room > this.maxEntries) throw e;
        room = this.maxEntries + 1;
      }
    }
  }

  #dump(
    withValues: boolean,
  ): { keys: Uint8Array<ArrayBuffer>[]; values: Uint8Array<ArrayBuffer>[] } {
    const { kb, vb, n } = this.#raw(withValues);
    const keys: Uint8Array<ArrayBuffer>[] = new Array(n);
    const values: Uint8Array<ArrayBuffer>[] = withValues ? new Array(n) : [];
    for (let i = 0; i < n; i++) {
      // copies, not views: callers read keys through .buffer
      keys[i] = kb.slice(i * this.keySize, (i + 1) * this.keySize);
      if (vb) values[i] = vb.slice(i * this.valueBytes, (i + 1) * this.valueBytes);
    }
    return { keys, values };
  }

  /** u64 value of array slot `index` summed over CPUs (per-CPU maps). */
  sumU64(index: number): bigint {
    const key = new Uint8Array(4);
    new DataView(key.buffer).setUint32(0, index, true);
    const v = this.lookup(key);
    if (!v) return 0n;
    const dv = new DataView(v.buffer);
    const stride = this.slots === 1 ? this.valueSize : (this.valueSize + 7) & ~7;
    let sum = 0n;
    for (let c = 0; c < this.slots; c++) sum += dv.getBigUint64(c * stride, true);
    return sum;
  }

  /** Write u64 `value` at array slot `index` (non-per-CPU array maps). */
  setU64(index: number, value: bigint): void {
    const key = new Uint8Array(4);
    new DataView(key.buffer).setUint32(0, index, true);
    const v = new Uint8Array(8);
    new DataView(v.buffer).setBigUint64(0, value, true);
    this.update(key, v);
  }
}
