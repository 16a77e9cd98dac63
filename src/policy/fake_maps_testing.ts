/**
 * In-memory stand-ins for the rule maps (unit tests: no BPF needed). Only
 * what apply.ts / live.ts / watch.ts call: lookup, update, delete, keys,
 * sumU64, setU64, maxEntries. A full hash map refuses a new key with E2BIG,
 * as the kernel does.
 */
import { AEGIS_RULE_GENERATIONS } from "../bpf/abi_gen.ts";
import type { BpfMap } from "../bpf/map.ts";
import type { ResolvedPath } from "../bpf/path_rule.ts";
import { NativeCallError } from "../errors.ts";
import { toHex } from "../util/bytes.ts";
import { DEFAULT_RULE_MAP_SIZES } from "./sizing.ts";
import type { MapName } from "../bpf/abi_gen.ts";
import type { PolicyApplyDeps } from "./apply.ts";
import { LiveRules } from "./live.ts";

export class FakeMap {
  readonly name: string;
  maxEntries: number;
  readonly data = new Map<string, Uint8Array<ArrayBuffer>>();
  /** throw on the n-th update from now (fault injection) */
  failAfter = Infinity;
  updates = 0;

  constructor(name: string, maxEntries: number) {
    this.name = name;
    this.maxEntries = maxEntries;
  }
  lookup(key: Uint8Array): Uint8Array<ArrayBuffer> | null {
    const v = this.data.get(toHex(key));
    return v ? v.slice() : null;
  }
  update(key: Uint8Array, value: Uint8Array<ArrayBuffer>): void {
    const k = toHex(key);
    if (this.updates++ >= this.failAfter) throw new NativeCallError("aegis_map_update", 12);
    if (!this.data.has(k) && this.data.size >= this.maxEntries) {
      throw new NativeCallError("aegis_map_update", 7);
    }
    this.data.set(k, value.slice());
  }
  delete(key: Uint8Array): boolean {
    return this.data.delete(toHex(key));
  }
  keys(): Uint8Array<ArrayBuffer>[] {
    return [...this.data.keys()].map((h) =>
      Uint8Array.from(h.match(/../g)!, (b) => parseInt(b, 16))
    );
  }
  entries(): { keys: Uint8Array<ArrayBuffer>[]; values: Uint8Array<ArrayBuffer>[] } {
    const keys = this.keys();
    return { keys, values: keys.map((k) => this.lookup(k)!) };
  }
  sumU64(index: number): bigint {
    const k = new Uint8Array(4);
    new DataView(k.buffer).setUint32(0, index, true);
    const v = this.data.get(toHex(k));
    return v ? new DataView(v.buffer).getBigUint64(0, true) : 0n;
  }
  setU64(index: number, value: bigint): void {
    const k = new Uint8Array(4);
    new DataView(k.buffer).setUint32(0, index, true);
    const v = new Uint8Array(8);
    new DataView(v.buffer).setBigUint64(0, value, true);
    this.data.set(toHex(k), v);
  }
}

/** Every rule map (default sizes unless given), aegis_config and aegis_policy. */
export function fakeMaps(sizes: Record<string, number> = {}): {
  maps: (name: MapName) => BpfMap;
  get: (name: string) => FakeMap;
} {
  const all = new Map<string, FakeMap>();
  for (const [n, s] of Object.entries(DEFAULT_RULE_MAP_SIZES)) {
    all.set(n, new FakeMap(n, sizes[n] ?? s));
  }
  all.set("aegis_config", new FakeMap("aegis_config", 64));
  all.set("aegis_policy", new FakeMap("aegis_policy", AEGIS_RULE_GENERATIONS));
  const get = (n: string) => {
    const m = all.get(n);
    if (!m) throw new Error(`no fake map ${n}`);
    return m;
  };
  return { maps: (n) => get(n) as unknown as BpfMap, get };
}

/**
 * A path resolver for tests: paths under /missing do not exist; any other
 * resolves to itself on device `dev` with inode `path.length * inoScale`.
 */
export function fakeResolvePath(dev = 5, inoScale = 1): (p: string) => ResolvedPath {
  return (p) =>
    p.startsWith("/missing")
      ? { status: "unresolved", path: p, reason: "does not exist (yet)" }
      : { status: "resolved", path: p, canonical: p, dev, ino: p.length * inoScale };
}

/**
 * What `policy apply` works on, over fake maps: the maps, the live rules
 * (store in `dir`, owned by `ownerUid`, default the owner of `dir`) and the
 * apply deps (state in `dir`, keys in `dir/keys`).
 */
export function fakeApplyDeps(dir: string, o: {
  sizes?: Record<string, number>;
  resolvePath?: (p: string) => ResolvedPath;
  ownerUid?: number;
} = {}): { fm: ReturnType<typeof fakeMaps>; live: LiveRules; deps: PolicyApplyDeps } {
  const fm = fakeMaps(o.sizes);
  const resolvePath = o.resolvePath ?? fakeResolvePath();
  const live = new LiveRules({
    maps: fm.maps,
    storePath: `${dir}/live_rules.json`,
    resolvePath,
    resolveCgroup: () => null,
    ownerUid: o.ownerUid ?? Deno.statSync(dir).uid!,
  });
  const deps: PolicyApplyDeps = {
    maps: fm.maps,
    stateDir: dir,
    keysDir: `${dir}/keys`,
    compileEnv: { resolvePath, resolveCgroup: () => null },
    live,
  };
  return { fm, live, deps };
}
