/**
 * Self-protection, the kernel half (bpf/self.bpf.c, `run --self-protect`;
 * docs/security.md, "Self-protection"): what the guards protect, written
 * into `aegis_self_inode` (inodes) and `aegis_self_obj` (map and link ids)
 * once the engine pinned, then AEGIS_CFG_SELF_PROTECT armed. Disarmed by a
 * clean stop; a SIGKILLed agent leaves it armed (the pins keep enforcing,
 * and so do the guards); `aegisbpf uninstall` (the agent's executable) may
 * still remove everything.
 *
 * @module
 */
import {
  AEGIS_CFG_SELF_PROTECT,
  AEGIS_GUARD_CGROUP_DIR,
  AEGIS_GUARD_CONFIG_DIR,
  AEGIS_GUARD_EXE,
  AEGIS_GUARD_LINK,
  AEGIS_GUARD_LINK_PIN,
  AEGIS_GUARD_MAP,
  AEGIS_GUARD_PIN_DIR,
  AEGIS_GUARD_PIN_FS,
  AEGIS_GUARD_RUN_DIR,
  AEGIS_GUARD_STATE_DIR,
  type MapName,
} from "./abi_gen.ts";
import type { BpfMap } from "./map.ts";
import type { BpfObject } from "./object.ts";
import { mountOf } from "./path_rule.ts";
import { inodeKey, kernelDev, selfObjKey, u32Key } from "./rule_codec.ts";
import type { Shim } from "../native/mod.ts";

export const MAP_SELF_INODE = "aegis_self_inode";
export const MAP_SELF_OBJ = "aegis_self_obj";

/** enum aegis_guard → its name in logs, events and the report. */
export const GUARD_NAMES: Record<number, string> = {
  1: "pin_dir",
  2: "state_dir",
  3: "config_dir",
  4: "cgroup_dir",
  5: "exe",
  6: "link_pin",
  7: "pin_fs",
  8: "map",
  9: "link",
  10: "agent",
  11: "run_dir",
};

/** enum aegis_tamper_op → the event's `op`. */
export const TAMPER_OP_NAMES: Record<number, string> = {
  1: "unlink",
  2: "rmdir",
  3: "rename",
  4: "create",
  5: "write",
  6: "truncate",
  7: "map_write",
  8: "link_fd",
  9: "signal",
  10: "ptrace",
  11: "umount",
};

/** Where the things to guard are. */
export interface GuardPaths {
  pinRoot: string;
  stateDir: string;
  /** /etc/aegisbpf */
  etcDir: string;
  /** trusted keys (inside etcDir unless AEGIS_KEYS_DIR moves them) */
  keysDir: string;
  /** /run/aegisbpf: the control socket and the shim's copy */
  runtimeDir: string;
  /** the agent's own cgroup directory */
  cgroupDir: string;
  /** the agent's executable (the compiled aegisbpf; deno under `deno run`) */
  exe: string;
}

/** One guarded inode. */
export interface GuardedInode {
  path: string;
  guard: number;
  /** kernel dev encoding */
  dev: number;
  ino: number;
}

/** Directories below `root` (itself first), breadth first, at most `max`, not following links. */
export function dirTree(root: string, max = 256, depth = 4): string[] {
  const out: string[] = [];
  let level = [root];
  for (let d = 0; d <= depth && level.length > 0 && out.length < max; d++) {
    const next: string[] = [];
    for (const dir of level) {
      if (out.length >= max) break;
      try {
        if (!Deno.lstatSync(dir).isDirectory) continue;
        out.push(dir);
        for (const e of Deno.readDirSync(dir)) {
          if (e.isDirectory) next.push(`${dir}/${e.name}`);
        }
      } catch { /* gone, or not there at all: nothing to guard */ }
    }
    level = next;
  }
  return out;
}

/**
 * The device a hook sees for a file (docs/engine.md, "File identity per
 * file system"): stat()'s, except on overlayfs, whose files get per-layer
 * pseudo devices in stat() while the hooks see the overlay superblock's
 * (the mount's maj:min in mountinfo).
 */
export function hookDev(path: string, st: Deno.FileInfo, mountinfo: string): number {
  let canonical = path;
  try {
    canonical = Deno.realPathSync(path);
  } catch { /* keep the path */ }
  const m = mountOf(mountinfo, canonical);
  return m && m.fsType === "overlay" ? m.dev : kernelDev(st.dev);
}

/**
 * What to guard by inode, from what exists now (a missing directory is
 * skipped: docs/security.md says what that leaves open). Pure but for the
 * file system reads; tests give it fixture trees.
 */
export function guardedInodes(
  p: GuardPaths,
  mountinfo = Deno.readTextFileSync("/proc/self/mountinfo"),
): GuardedInode[] {
  const want: { path: string; guard: number; follow?: boolean }[] = [];
  for (const d of [p.pinRoot, `${p.pinRoot}/maps`, `${p.pinRoot}/links`]) {
    want.push({ path: d, guard: AEGIS_GUARD_PIN_DIR });
  }
  for (const d of dirTree(p.stateDir)) want.push({ path: d, guard: AEGIS_GUARD_STATE_DIR });
  for (const d of dirTree(p.runtimeDir)) want.push({ path: d, guard: AEGIS_GUARD_RUN_DIR });
  for (const root of [p.etcDir, p.keysDir]) {
    for (const d of dirTree(root)) want.push({ path: d, guard: AEGIS_GUARD_CONFIG_DIR });
  }
  want.push({ path: p.cgroupDir, guard: AEGIS_GUARD_CGROUP_DIR });
  want.push({ path: p.exe, guard: AEGIS_GUARD_EXE, follow: true });
  try {
    for (const e of Deno.readDirSync(`${p.pinRoot}/links`)) {
      want.push({ path: `${p.pinRoot}/links/${e.name}`, guard: AEGIS_GUARD_LINK_PIN });
    }
  } catch { /* no links dir: nothing pinned */ }
  const out: GuardedInode[] = [];
  const seen = new Set<string>();
  for (const w of want) {
    let st: Deno.FileInfo;
    try {
      st = w.follow ? Deno.statSync(w.path) : Deno.lstatSync(w.path);
    } catch {
      continue;
    }
    const dev = hookDev(w.path, st, mountinfo);
    const id = `${dev}:${st.ino}`;
    if (seen.has(id)) continue; // keys inside /etc/aegisbpf: one entry
    seen.add(id);
    out.push({ path: w.path, guard: w.guard, dev, ino: st.ino! });
  }
  // the bpffs of the pins: never unmounted (key: its dev, inode 0)
  try {
    const dev = kernelDev(Deno.statSync(p.pinRoot).dev);
    out.push({ path: p.pinRoot, guard: AEGIS_GUARD_PIN_FS, dev, ino: 0 });
  } catch { /* no pins */ }
  return out;
}

/** struct aegis_self_obj_key (src/bpf/rule_codec.ts). */
export { selfObjKey };

/** What the guards protect once armed (the report's self_protection). */
export interface SelfGuardSummary {
  inodes: GuardedInode[];
  mapIds: number[];
  linkIds: number[];
}

/** The kernel ids of the object's maps and of the links pinned under `pinRoot/links`. */
export function objectIds(
  shim: Shim,
  obj: BpfObject,
  pinRoot: string,
): { mapIds: number[]; linkIds: number[] } {
  const mapIds: number[] = [];
  for (const m of obj.maps) {
    try {
      mapIds.push(shim.objId(obj.map(m as MapName).fd));
    } catch (e) {
      // an internal map (.rodata…) libbpf did not create has no fd: nothing to guard
      if (!m.includes(".")) throw e;
    }
  }
  const linkIds: number[] = [];
  for (const e of Deno.readDirSync(`${pinRoot}/links`)) {
    const fd = shim.getPinned(`${pinRoot}/links/${e.name}`);
    try {
      linkIds.push(shim.objId(fd));
    } finally {
      shim.closeFd(fd);
    }
  }
  return { mapIds, linkIds };
}

function clear(m: BpfMap): void {
  const keys = m.keys();
  if (keys.length > 0) m.deleteBatch(keys);
}

/**
 * Arm: the guard maps emptied and filled with what is guarded now, then
 * the switch. Called by the agent (in its own cgroup: never refused).
 */
export function armSelfGuard(
  shim: Shim,
  obj: BpfObject,
  paths: GuardPaths,
): SelfGuardSummary {
  const inodes = obj.map(MAP_SELF_INODE);
  const objs = obj.map(MAP_SELF_OBJ);
  clear(inodes);
  clear(objs);
  const guarded = guardedInodes(paths);
  for (const g of guarded) inodes.update(inodeKey(g.dev, g.ino, 0), u32Key(g.guard));
  const { mapIds, linkIds } = objectIds(shim, obj, paths.pinRoot);
  for (const id of mapIds) objs.update(selfObjKey(id, AEGIS_GUARD_MAP), u32Key(AEGIS_GUARD_MAP));
  for (const id of linkIds) {
    objs.update(selfObjKey(id, AEGIS_GUARD_LINK), u32Key(AEGIS_GUARD_LINK));
  }
  obj.map("aegis_config").setU64(AEGIS_CFG_SELF_PROTECT, 1n);
  return { inodes: guarded, mapIds, linkIds };
}

/** Disarm: the switch off first, then the guard maps emptied. */
export function disarmSelfGuard(obj: BpfObject): void {
  obj.map("aegis_config").setU64(AEGIS_CFG_SELF_PROTECT, 0n);
  clear(obj.map(MAP_SELF_INODE));
  clear(obj.map(MAP_SELF_OBJ));
}
