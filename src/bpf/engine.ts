/**
 * The enforcement engine's loader: pick the programs for the mode and the
 * kernel, reuse or create the pinned maps, load, attach, check the attach
 * contract, and pin the links so enforcement outlives the agent.
 *
 * Pins live under one root (default /sys/fs/bpf/aegisbpf):
 *   maps/<map>    every map of the object (rules, config, counters, ring)
 *   links/<prog>  every attached program's link
 * A restarted agent re-adopts them: the maps (and so the rules and the
 * emergency state) are reused as they are, the new programs are attached
 * *before* the old links are unpinned, so no instant is left without the
 * rules. The first 8 bytes of the ABI fingerprint are kept in the pinned
 * config map (AEGIS_CFG_LAYOUT); pins of another layout are refused.
 *
 * @module
 */
import { aegisPaths, DEFAULT_PIN_ROOT } from "../contracts.ts";
import { AegisError } from "../errors.ts";
import type { Shim } from "../native/mod.ts";
import {
  ABI_FINGERPRINT,
  AEGIS_CFG_BTRFS_IDENTITY,
  AEGIS_CFG_LAYOUT,
  AEGIS_CFG_SIGNAL,
} from "./abi_gen.ts";
import { setBtrfsIdentity } from "./path_rule.ts";
import { BpfMap } from "./map.ts";
import { pinsExist } from "./pins.ts";
import { type AttachResult, BpfObject } from "./object.ts";

/** The bpffs directory of this agent's pins (aegisPaths: AEGIS_PIN_ROOT, else the default). */
export function pinRoot(): string {
  return aegisPaths().pinRoot;
}

/** Maps every program set shares. */
export const MAP_EVENTS = "aegis_events";
export const MAP_COUNTERS = "aegis_counters";
export const MAP_CONFIG = "aegis_config";
export const MAP_HOOK_STATS = "aegis_hook_stats";

/**
 * Programs the kernel may refuse to verify without that failing the start:
 * the object is loaded again without them, and the plan says why
 * (PlannedProgram.reason). The exec-hash programs are sleepable and call
 * bpf_ima_file_hash (kernels >= 5.18 with sleepable BPF LSM):
 * bpf/exec_hash.bpf.c.
 */
export const OPTIONAL_PROGRAMS: ReadonlySet<string> = new Set([
  "aegis_bprm_hash",
  "aegis_mmap_hash",
  "aegis_mprotect_hash",
]);

/**
 * The optional programs among `load` that a load error names (libbpf loads
 * in object order and stops at the first refusal; its log, in the error's
 * message, names that program). Empty: the error is not theirs.
 */
export function refusedOptional(load: Iterable<string>, message: string): string[] {
  return [...load].filter((p) =>
    OPTIONAL_PROGRAMS.has(p) && (message.includes(`"${p}"`) || message.includes(`'${p}'`))
  );
}

/** Which file hook(s) to use (`run --lsm-hook`). */
export type FileHookChoice = "file" | "inode" | "both";

/**
 * "lsm": the BPF LSM programs (they deny). "fallback": the observe-only
 * tracepoint programs for kernels without BPF LSM (bpf/fallback.bpf.c);
 * they report would-block matches, or signal the process when
 * `signal` is set (ENFORCE_SIGNAL).
 */
export type EngineMode = "lsm" | "fallback";

/** The fallback programs; all must attach. */
export const FALLBACK_PROGRAMS: readonly string[] = [
  "aegis_fb_openat",
  "aegis_fb_openat2",
  "aegis_fb_open",
  "aegis_fb_exec",
  "aegis_fb_connect",
];

export interface EngineOptions {
  /** Which program family; default "lsm". */
  mode?: EngineMode;
  /** Fallback mode: signal sent on a match (0 = audit only); armed before attach. */
  signal?: number;
  /** Pin root, or null to pin nothing (tests; enforcement ends with the process). */
  pinRoot: string | null;
  fileHook: FileHookChoice;
  /** max_entries per map, set before load (not when re-adopting pins). */
  mapSizes?: Record<string, number>;
  /** Ring buffer bytes (power of two); only used when the ring is created. */
  ringBytes?: number;
  /** Also load the exec tracepoint for exec telemetry. */
  execEvents?: boolean;
  /** Also load the openat tracepoint for open telemetry (busy). */
  openEvents?: boolean;
  /** Also load the self-protection guards (bpf/self.bpf.c; run --self-protect). */
  selfProtect?: boolean;
  /** Narrow the plan to these sections (tests load one surface at a time). */
  select?: (section: string) => boolean;
  /** Called after load, before attach: set switches and allowlists the new
   * programs must see from their first invocation. */
  configure?: (obj: BpfObject) => void;
  /** BTF function query (the shim's); injectable for tests. */
  hasBtfFunc?: (name: string) => boolean;
  /** Fault injection (tests): count these sections as failed to attach. */
  failAttach?: (section: string) => boolean;
}

/** The LSM hook of a program section, e.g. "lsm/file_open" → "file_open". */
export function lsmHookOf(section: string): string | null {
  const m = /^lsm(?:\.s)?\/(\w+)$/.exec(section);
  return m ? m[1] : null;
}

/** Layout tag kept in the pinned config map: first 8 bytes of the fingerprint. */
export function layoutTag(fingerprint = ABI_FINGERPRINT): bigint {
  return BigInt(`0x${fingerprint.slice(0, 16)}`);
}

/** The self-protection programs (bpf/self.bpf.c) are named aegis_self_*. */
export function isSelfProgram(program: string): boolean {
  return program.startsWith("aegis_self_");
}

/** A program the engine wants, and whether the kernel offers its hook. */
export interface PlannedProgram {
  program: string;
  section: string;
  /**
   * false: the kernel's BTF has no bpf_lsm_<hook>, or (an OPTIONAL_PROGRAMS
   * one) the kernel refused to load it; reported, not loaded
   */
  available: boolean;
  /** why it is not available (set by Engine.start) */
  reason?: string;
}

/**
 * The programs to load: every LSM program of the object except the file
 * hook not chosen, plus the exec tracepoint when asked. Pure: tested on
 * fixtures.
 */
export function planPrograms(
  programs: readonly string[],
  sections: readonly string[],
  opts: Pick<EngineOptions, "fileHook" | "execEvents" | "openEvents" | "mode" | "selfProtect">,
  hasBtfFunc: (name: string) => boolean,
): PlannedProgram[] {
  const out: PlannedProgram[] = [];
  const fallback = opts.mode === "fallback";
  if (fallback) {
    const missing = FALLBACK_PROGRAMS.filter((p) => !programs.includes(p));
    if (missing.length > 0) {
      throw new AegisError("ABI_MISMATCH", `The BPF object has no program ${missing.join(", ")}`);
    }
  }
  programs.forEach((program, i) => {
    const section = sections[i];
    const hook = lsmHookOf(section);
    if (fallback && FALLBACK_PROGRAMS.includes(program)) {
      out.push({ program, section, available: true });
      return;
    }
    if (hook === null) {
      if (
        (opts.execEvents && section === "tp/sched/sched_process_exec") ||
        (opts.openEvents && section === "tp/syscalls/sys_enter_openat")
      ) {
        out.push({ program, section, available: true });
      }
      return;
    }
    if (fallback) return;
    if (isSelfProgram(program)) {
      // the guards share hooks with the file surface but not its --lsm-hook choice
      if (opts.selfProtect) {
        out.push({ program, section, available: hasBtfFunc(`bpf_lsm_${hook}`) });
      }
      return;
    }
    if (hook === "file_open" && opts.fileHook === "inode") return;
    if (hook === "inode_permission" && opts.fileHook === "file") return;
    // the exec-hash programs ask IMA for the content; without the helper the
    // kernel would refuse them (mprotect trusts what the mapping one verified)
    const ima = !OPTIONAL_PROGRAMS.has(program) || hasBtfFunc(IMA_HASH_HELPER);
    out.push({ program, section, available: hasBtfFunc(`bpf_lsm_${hook}`) && ima });
  });
  return out;
}

/** The helper the exec-hash programs call (bpf/exec_hash.bpf.c). */
export const IMA_HASH_HELPER = "bpf_ima_file_hash";

/** Why a planned program is not available. */
function unavailableReason(p: PlannedProgram, hasBtfFunc: (name: string) => boolean): string {
  const hook = `bpf_lsm_${lsmHookOf(p.section)}`;
  if (!hasBtfFunc(hook)) return `the kernel has no ${hook}`;
  return `the kernel has no ${IMA_HASH_HELPER} (a kernel >= 5.18 with CONFIG_IMA): the ` +
    "content of executed files comes from the daemon's content scan instead";
}

/** A loaded, attached (and usually pinned) engine. */
export class Engine implements Disposable {
  readonly obj: BpfObject;
  readonly plan: PlannedProgram[];
  readonly attach: AttachResult[];
  readonly pinRoot: string | null;
  /** Pins that existed before this start (a re-adoption). */
  readonly readopted: boolean;

  private constructor(
    obj: BpfObject,
    plan: PlannedProgram[],
    attach: AttachResult[],
    pinRoot: string | null,
    readopted: boolean,
  ) {
    this.obj = obj;
    this.plan = plan;
    this.attach = attach;
    this.pinRoot = pinRoot;
    this.readopted = readopted;
  }

  /**
   * Load and attach. Throws ATTACH_CONTRACT_MISMATCH (nothing left
   * attached by this call) when a planned, available program did not
   * attach, and PIN_LAYOUT_MISMATCH for pins of another ABI layout.
   */
  static start(shim: Shim, objectBytes: Uint8Array<ArrayBuffer>, opts: EngineOptions): Engine {
    const hasBtf = opts.hasBtfFunc ?? ((n: string) => shim.btfHasFunc(n));
    const pinRoot = opts.pinRoot;
    const readopted = pinRoot !== null && pinsExist(pinRoot);
    if (readopted) checkPinnedLayout(shim, pinRoot!);
    let obj = BpfObject.open(shim, objectBytes);
    try {
      const plan = planPrograms(obj.programs, obj.sections, opts, hasBtf)
        .filter((p) => !opts.select || opts.select(p.section));
      for (const p of plan) {
        if (!p.available) p.reason = unavailableReason(p, hasBtf);
      }
      const load = new Set(plan.filter((p) => p.available).map((p) => p.program));
      try {
        loadObject(shim, obj, load, opts, pinRoot, readopted);
      } catch (e) {
        // A kernel that refuses an optional program (a sleepable one, a
        // helper it lacks) keeps every other hook: load again without it.
        // Only when the load error names it (libbpf loads in object order
        // and stops at the first refusal).
        const why = e instanceof Error ? e.message : String(e);
        const optional = refusedOptional(load, why);
        if (optional.length === 0) throw e;
        obj.close();
        obj = BpfObject.open(shim, objectBytes);
        for (const p of plan) {
          if (!optional.includes(p.program)) continue;
          load.delete(p.program);
          p.available = false;
          p.reason = `the kernel refused to load it: ${why.slice(0, 400)}`;
        }
        loadObject(shim, obj, load, opts, pinRoot, readopted);
      }
      const cfg = obj.map("aegis_config");
      cfg.setU64(AEGIS_CFG_LAYOUT, layoutTag());
      const btrfs = btrfsBtfPresent();
      cfg.setU64(AEGIS_CFG_BTRFS_IDENTITY, btrfs ? 1n : 0n);
      setBtrfsIdentity(btrfs);
      // armed before attach: no window where a match is only reported
      cfg.setU64(AEGIS_CFG_SIGNAL, BigInt(opts.mode === "fallback" ? opts.signal ?? 0 : 0));
      opts.configure?.(obj);
      const attach = obj.attachAll();
      const missing = attach.filter((a) =>
        load.has(a.program) && (a.status !== "attached" || opts.failAttach?.(a.section))
      );
      if (missing.length > 0) {
        throw new AegisError(
          "ATTACH_CONTRACT_MISMATCH",
          `Attached hooks differ from the expected ones; not attached: ${
            missing.map((a) =>
              `${a.section} (${
                a.status === "attached" ? "injected failure" : a.errnoName ?? a.status
              })`
            ).join(", ")
          }` +
            (opts.mode === "fallback"
              ? ". The fallback needs syscall tracepoints (tracefs: mount -t tracefs tracefs " +
                "/sys/kernel/tracing) and BTF tracepoints (/sys/kernel/btf/vmlinux)"
              : ""),
        );
      }
      if (pinRoot !== null) {
        for (const a of attach) {
          if (a.status !== "attached") continue;
          // The new program is attached already: dropping the old pin
          // detaches the old program with the new one in place.
          const path = `${pinRoot}/links/${a.program}`;
          if (exists(path)) Deno.removeSync(path);
          obj.pinLink(a.program, path);
        }
        // guards of an earlier --self-protect start this one does not load: detached
        if (!opts.selfProtect) {
          for (const e of [...Deno.readDirSync(`${pinRoot}/links`)]) {
            if (isSelfProgram(e.name)) Deno.removeSync(`${pinRoot}/links/${e.name}`);
          }
        }
      }
      return new Engine(obj, plan, attach, pinRoot, readopted);
    } catch (e) {
      obj.close(); // unpinned links detach
      // A first start leaves nothing behind; a re-adoption keeps the old
      // pins, which are still enforcing.
      if (pinRoot !== null && !readopted) uninstallPins(pinRoot);
      throw e;
    }
  }

  /** Sections attached by this engine. */
  attachedSections(): string[] {
    return this.attach.filter((a) => a.status === "attached").map((a) => a.section);
  }

  /** Close the object. Pinned links keep enforcing; unpinned ones detach. */
  close(): void {
    this.obj.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Select, size, pin and load one opened object (Engine.start). */
function loadObject(
  shim: Shim,
  obj: BpfObject,
  load: ReadonlySet<string>,
  opts: EngineOptions,
  pinRoot: string | null,
  readopted: boolean,
): void {
  obj.selectPrograms((p) => load.has(p));
  if (opts.ringBytes && !readopted) obj.setMaxEntries("aegis_events", opts.ringBytes);
  if (!readopted) {
    for (const [m, n] of Object.entries(opts.mapSizes ?? {})) obj.setMaxEntries(m, n);
  }
  if (pinRoot !== null) {
    Deno.mkdirSync(`${pinRoot}/maps`, { recursive: true });
    Deno.mkdirSync(`${pinRoot}/links`, { recursive: true });
    for (const m of obj.maps) {
      if (m.includes(".")) continue; // internal maps (.rodata…) are per object
      const path = `${pinRoot}/maps/${m}`;
      // libbpf reuses a pin only if its geometry matches the definition
      if (exists(path)) obj.setMaxEntries(m, pinnedMaxEntries(shim, path));
      obj.setPinPath(m, path);
    }
  }
  obj.load();
}

function exists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Is the btrfs module's BTF there (so the programs about to load can key
 * btrfs files by subvolume: bpf/lib/inode.h)? Without it, btrfs rules are
 * refused (src/bpf/path_rule.ts).
 */
export function btrfsBtfPresent(btfDir = "/sys/kernel/btf"): boolean {
  try {
    return Deno.statSync(`${btfDir}/btrfs`).isFile;
  } catch {
    return false;
  }
}

/**
 * Tell path resolution what the programs pinned under `maps` do for btrfs
 * (AEGIS_CFG_BTRFS_IDENTITY, written at their load).
 */
export function adoptBtrfsIdentity(config: { sumU64(index: number): bigint }): void {
  setBtrfsIdentity(config.sumU64(AEGIS_CFG_BTRFS_IDENTITY) === 1n);
}

function pinnedMaxEntries(shim: Shim, path: string): number {
  const fd = shim.getPinned(path);
  try {
    return shim.mapInfo(fd).maxEntries;
  } finally {
    shim.closeFd(fd);
  }
}

/** Refuse pins written by an agent with another ABI layout. */
function checkPinnedLayout(shim: Shim, pinRoot: string): void {
  const fd = shim.getPinned(`${pinRoot}/maps/aegis_config`);
  try {
    const tag = new BpfMap(shim, "aegis_config", fd).sumU64(AEGIS_CFG_LAYOUT);
    if (tag !== layoutTag()) {
      throw new AegisError(
        "PIN_LAYOUT_MISMATCH",
        `The pins under ${pinRoot} were made by an aegisbpf with another map layout (${
          tag.toString(16).padStart(16, "0")
        }, this one is ${ABI_FINGERPRINT.slice(0, 16)}). Enforcement from those pins is still ` +
          `active. Run "aegisbpf uninstall" to remove them, then start again.`,
      );
    }
  } finally {
    shim.closeFd(fd);
  }
}

/** Remove every pin under `pinRoot`; returns what was removed. Links first. */
export function uninstallPins(pinRoot = DEFAULT_PIN_ROOT): string[] {
  const removed: string[] = [];
  for (const sub of ["links", "maps"]) {
    const dir = `${pinRoot}/${sub}`;
    if (!exists(dir)) continue;
    for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
      Deno.removeSync(`${dir}/${e.name}`);
      removed.push(`${dir}/${e.name}`);
    }
    Deno.removeSync(dir);
  }
  if (exists(pinRoot)) Deno.removeSync(pinRoot);
  return removed;
}
