/**
 * The survival allowlist: executables whose inodes no rule may deny, so a
 * policy can never brick the host — PID 1's executable and the init, ssh,
 * container-runtime, package-manager and shell binaries running at start.
 *
 * Selection is pure (tested on fixtures); collection reads /proc. `list`
 * and `verify` (aegisbpf survival, docs/operations.md) read the map back
 * and compare it with the survivors running now.
 *
 * @module
 */
import { ABI_LAYOUT } from "./abi_gen.ts";
import type { BpfMap } from "./map.ts";
import { devName } from "./path_rule.ts";
import { inodeKey, kernelDev } from "./rule_codec.ts";

/** Basenames whose running executables are always allowed. */
export const SURVIVAL_NAMES: ReadonlySet<string> = new Set([
  "init",
  "systemd",
  "systemd-journald",
  "systemd-logind",
  "systemd-udevd",
  "sshd",
  "ssh",
  "containerd",
  "containerd-shim",
  "containerd-shim-runc-v2",
  "runc",
  "crun",
  "dockerd",
  "kubelet",
  "apt",
  "apt-get",
  "dpkg",
  "sh",
  "dash",
  "bash",
  "sudo",
  "su",
  "login",
  "agetty",
]);

export interface ProcExe {
  pid: number;
  /** target of /proc/<pid>/exe, possibly ending in " (deleted)" */
  exe: string;
}

/** The processes whose executables belong on the allowlist. */
export function selectSurvivors(procs: readonly ProcExe[]): ProcExe[] {
  return procs.filter((p) => {
    const path = p.exe.replace(/ \(deleted\)$/, "");
    const base = path.slice(path.lastIndexOf("/") + 1);
    return p.pid === 1 || SURVIVAL_NAMES.has(base);
  });
}

/** Executables of the running processes (unreadable ones skipped). */
export function listProcExes(proc = "/proc"): ProcExe[] {
  const out: ProcExe[] = [];
  for (const e of Deno.readDirSync(proc)) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      out.push({ pid: Number(e.name), exe: Deno.readLinkSync(`${proc}/${e.name}/exe`) });
    } catch { /* kernel thread, or the process is gone */ }
  }
  return out;
}

export interface SurvivalEntry {
  exe: string;
  dev: number;
  ino: number;
}

/** A running process whose executable belongs on the allowlist, with its inode. */
export interface Survivor {
  pid: number;
  /** target of /proc/<pid>/exe */
  exe: string;
  /** kernel dev encoding */
  dev: number;
  ino: number;
}

/** The survivors running now, with the inode of each one's executable (gone ones skipped). */
export function runningSurvivors(proc = "/proc"): Survivor[] {
  const out: Survivor[] = [];
  for (const p of selectSurvivors(listProcExes(proc))) {
    let st: Deno.FileInfo;
    try {
      st = Deno.statSync(`${proc}/${p.pid}/exe`); // follows the link, even to a deleted file
    } catch {
      continue;
    }
    out.push({ pid: p.pid, exe: p.exe, dev: kernelDev(st.dev), ino: st.ino! });
  }
  return out;
}

/**
 * Write the inodes of the survivors' executables into the map (gen 0
 * keys). Returns what was allowlisted, one entry per distinct inode.
 */
export function populateSurvival(map: BpfMap, proc = "/proc"): SurvivalEntry[] {
  const seen = new Map<string, SurvivalEntry>();
  for (const p of runningSurvivors(proc)) {
    const id = `${p.dev}:${p.ino}`;
    if (seen.has(id)) continue;
    seen.set(id, { exe: p.exe, dev: p.dev, ino: p.ino });
    const value = new Uint8Array(map.valueBytes);
    new DataView(value.buffer).setUint32(0, 1, true);
    map.update(inodeKey(p.dev, p.ino, 0), value);
  }
  return [...seen.values()];
}

/** What reading the allowlist needs of its map (BpfMap has it). */
export interface SurvivalMap {
  readonly maxEntries: number;
  keys(): Uint8Array<ArrayBuffer>[];
}

/** An allowlist entry: the inode, and a running survivor's executable with it (else null). */
export interface SurvivalListed {
  dev: number;
  /** "major:minor" */
  device: string;
  ino: string;
  exe: string | null;
}

const KEY = ABI_LAYOUT.structs.aegis_inode_key.fields;

/** The allowlist's entries (sorted by dev, then inode), named by the survivors running now. */
export function listSurvival(map: SurvivalMap, survivors: readonly Survivor[]): SurvivalListed[] {
  const exes = new Map(survivors.map((s) => [`${s.dev}:${s.ino}`, s.exe]));
  return map.keys().map((k) => {
    const dv = new DataView(k.buffer, k.byteOffset, k.byteLength);
    const dev = dv.getUint32(KEY.dev.offset, true);
    const ino = dv.getBigUint64(KEY.ino.offset, true);
    return { dev, device: devName(dev), ino: String(ino), exe: exes.get(`${dev}:${ino}`) ?? null };
  }).sort((a, b) => a.dev - b.dev || (BigInt(a.ino) < BigInt(b.ino) ? -1 : 1));
}

/** `survival verify`: the survivors running now against the allowlist. */
export interface SurvivalCheck {
  entries: number;
  survivors: { pid: number; exe: string; dev: number; ino: string }[];
  /** running survivors whose executable is not on the list (started from a new binary) */
  missing: { pid: number; exe: string; dev: number; ino: string }[];
  /** entries no running survivor has */
  stale: SurvivalListed[];
}

/** Compare the allowlist with the survivors running now. */
export function checkSurvival(map: SurvivalMap, survivors: readonly Survivor[]): SurvivalCheck {
  const listed = listSurvival(map, survivors);
  const onList = new Set(listed.map((e) => `${e.dev}:${e.ino}`));
  const all = survivors.map((s) => ({ pid: s.pid, exe: s.exe, dev: s.dev, ino: String(s.ino) }));
  return {
    entries: listed.length,
    survivors: all,
    missing: all.filter((s) => !onList.has(`${s.dev}:${s.ino}`)),
    stale: listed.filter((e) => e.exe === null),
  };
}
