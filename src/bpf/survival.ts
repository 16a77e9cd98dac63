/**
 * The survival allowlist: executables whose inodes no rule may deny, so a
 * policy can never brick the host — PID 1's executable and the init, ssh,
 * container-runtime, package-manager and shell binaries running at start.
 *
 * Selection is pure (tested on fixtures); collection reads /proc.
 *
 * @module
 */
import type { BpfMap } from "./map.ts";
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

/**
 * Write the inodes of the survivors' executables into the map (gen 0
 * keys). Returns what was allowlisted, one entry per distinct inode.
 */
export function populateSurvival(map: BpfMap, proc = "/proc"): SurvivalEntry[] {
  const seen = new Map<string, SurvivalEntry>();
  for (const p of selectSurvivors(listProcExes(proc))) {
    let st: Deno.FileInfo;
    try {
      st = Deno.statSync(`${proc}/${p.pid}/exe`); // follows the link, even to a deleted file
    } catch {
      continue;
    }
    const dev = kernelDev(st.dev);
    const id = `${dev}:${st.ino}`;
    if (seen.has(id)) continue;
    seen.set(id, { exe: p.exe, dev, ino: st.ino! });
    const value = new Uint8Array(map.valueBytes);
    new DataView(value.buffer).setUint32(0, 1, true);
    map.update(inodeKey(dev, st.ino!, 0), value);
  }
  return [...seen.values()];
}
