/**
 * BPF object lifecycle over the shim: open (embedded bytes), configure,
 * load, attach with a per-program result, maps by name, close.
 *
 * @module
 */
import { errnoName, type NativeObject, type Shim } from "../native/mod.ts";
import { BpfMap } from "./map.ts";
import type { MapName } from "./abi_gen.ts";

/** What happened to one program on attach. */
export interface AttachResult {
  program: string;
  section: string;
  /** attached, failed (errno set) or not loaded (autoload off). */
  status: "attached" | "failed" | "not_loaded";
  errno?: number;
  errnoName?: string;
}

export class BpfObject implements Disposable {
  readonly shim: Shim;
  readonly programs: readonly string[];
  readonly sections: readonly string[];
  readonly maps: readonly string[];
  #obj: NativeObject;
  #mapCache = new Map<string, BpfMap>();

  private constructor(shim: Shim, obj: NativeObject) {
    this.shim = shim;
    this.#obj = obj;
    this.programs = obj.programNames();
    this.sections = obj.programSections();
    this.maps = obj.mapNames();
  }

  /** Open (not load) an object from its ELF bytes. */
  static open(shim: Shim, bytes: Uint8Array<ArrayBuffer>, name = "aegis"): BpfObject {
    return new BpfObject(shim, shim.openObject(bytes, name));
  }

  /** Section of a program ("tp/syscalls/sys_enter_openat", "lsm/file_open"…). */
  sectionOf(prog: string): string {
    const i = this.programs.indexOf(prog);
    return i < 0 ? "" : this.sections[i];
  }

  /** Programs whose section starts with `prefix` ("lsm/", "tp/"). */
  programsIn(prefix: string): string[] {
    return this.programs.filter((_, i) => this.sections[i].startsWith(prefix));
  }

  /** Before load: load only the programs for which `want` is true. */
  selectPrograms(want: (prog: string, section: string) => boolean): void {
    this.programs.forEach((p, i) => this.#obj.setAutoload(p, want(p, this.sections[i])));
  }

  /** After load: the fd of a program (owned by the object; /proc/self/fdinfo/<fd> has its stats). */
  programFd(prog: string): number {
    return this.#obj.programFd(prog);
  }

  setMaxEntries(map: string, n: number): void {
    this.#obj.setMaxEntries(map, n);
  }

  /** Before load: reuse the map pinned at `path`, or create and pin it there. */
  setPinPath(map: string, path: string): void {
    this.#obj.setPinPath(map, path);
  }

  load(): void {
    this.#obj.load();
  }

  attachAll(): AttachResult[] {
    const res = this.#obj.attachAll();
    return this.programs.map((program, i) => {
      const rc = res[i];
      const section = this.sections[i];
      if (rc === 0) return { program, section, status: "attached" };
      if (rc === 1) return { program, section, status: "not_loaded" };
      return { program, section, status: "failed", errno: -rc, errnoName: errnoName(-rc) };
    });
  }

  attach(prog: string): void {
    this.#obj.attach(prog);
  }

  detach(prog: string): void {
    this.#obj.detach(prog);
  }

  pinLink(prog: string, path: string): void {
    this.#obj.pinLink(prog, path);
  }

  pinMap(map: MapName, path: string): void {
    this.#obj.pinMap(map, path);
  }

  /** A map of this (loaded) object by name. */
  map(name: MapName): BpfMap {
    let m = this.#mapCache.get(name);
    if (!m) {
      m = new BpfMap(this.shim, name, this.#obj.mapFd(name));
      this.#mapCache.set(name, m);
    }
    return m;
  }

  close(): void {
    this.#mapCache.clear();
    this.#obj.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
