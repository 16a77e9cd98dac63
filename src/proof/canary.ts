/**
 * The file-surface canary of the enforcement proof (docs/guarantees.md,
 * "Enforcement proof"): a sentinel file the agent owns, a built-in deny
 * rule on its inode, and a short-lived probe process outside the agent's
 * cgroup that tries to open it. The kernel answering EPERM is the proof.
 *
 * - The sentinel is `<runtimeDir>/proof/file.sentinel`, a regular file,
 *   0600 root, in a 0700 root directory. It holds no data worth reading:
 *   a failed proof (the open succeeds) discloses nothing.
 * - The canary rule is an ordinary `aegis_deny_inode` entry whose rule id is
 *   in the reserved canary range (CANARY_RULE_ID_BASE…): it only matches the
 *   sentinel's inode, so it can never deny a real workload. It is carried
 *   into every rule generation (apply.ts setBuiltinRules) and re-asserted
 *   in the live generation before every proof.
 * - The probe is `/bin/sh` started from the agent (so its exec is exempt
 *   like every agent action), moved into `aegisbpf.canary` (beside the agent's own cgroup) while
 *   it waits on its stdin, then released to do `: <sentinel` (an open for
 *   read, nothing read). The agent's own cgroup is exempt from every rule
 *   (src/bpf/self_cgroup.ts), the canary cgroup is not.
 *
 * Its block records carry the canary rule id: the daemon marks them
 * `self_test: true` and keeps them out of the user-visible block metrics.
 *
 * @module
 */
import {
  ABI_LAYOUT,
  AEGIS_POL_DENY_BPF,
  AEGIS_POL_DENY_MODULE,
  AEGIS_POL_DENY_PTRACE,
  AEGIS_POL_EXEC_ALLOWLIST,
  AEGIS_POL_EXEC_HASH,
  AEGIS_POL_EXEC_RULES,
  AEGIS_POL_EXEC_TRUSTED,
  AEGIS_POL_FILE_RULES,
  AEGIS_POL_NET_IP_PORT,
  AEGIS_POL_NET_RULES,
  AEGIS_RT_COMM,
  AEGIS_RT_HASH,
  AEGIS_RT_INODE,
  AEGIS_RT_IP_PORT,
  AEGIS_RULE_DENY,
} from "../bpf/abi_gen.ts";
import { ipPortKey, parseIpPort } from "../bpf/net_codec.ts";
import { errnoName } from "../errno.ts";
import type { ConnectProbe, KernelOp, KernelProbe } from "../native/probe.ts";
import { commKey } from "../bpf/exec_codec.ts";
import { hashKey, inodeKey, kernelDev, policyValue, ruleValue, u32Key } from "../bpf/rule_codec.ts";
import { AegisError } from "../errors.ts";
import { BUILTIN_RULE_IDS } from "../policy/generations.ts";
import type { CompiledEntry } from "../policy/compile.ts";

/** Rule ids of built-in canary rules: above policy line numbers (< 2^24), below live rules (2^31). */
export const CANARY_RULE_ID_BASE = BUILTIN_RULE_IDS[0];
export const CANARY_RULE_ID_END = BUILTIN_RULE_IDS[1];
export const CANARY_FILE_RULE_ID = CANARY_RULE_ID_BASE + 1;
export const CANARY_EXEC_RULE_ID = CANARY_RULE_ID_BASE + 2;
export const CANARY_NET_RULE_ID = CANARY_RULE_ID_BASE + 3;
export const CANARY_HASH_RULE_ID = CANARY_RULE_ID_BASE + 4;
/**
 * The network canary's target: TCP to a loopback address no service uses,
 * on the discard port. Connects there are denied on the whole node; if one
 * is let through, it is refused on loopback and nothing leaves the host.
 */
export const CANARY_NET_ADDR = "127.77.65.71";
export const CANARY_NET_PORT = 9;
/**
 * The exec canary's comm: the basename of the exec sentinel (15 bytes, the
 * longest comm). A program of this name is denied on the whole node.
 */
export const CANARY_COMM = "aegisbpf-canary";
/**
 * The exec-hash canary's file name. Its comm ("aegisbpf-hcanar") is not
 * CANARY_COMM, so the comm canary does not refuse it first: the content
 * rule must.
 */
export const HASH_CANARY_NAME = "aegisbpf-hcanary";
/**
 * The exec-hash sentinel's content: a script that only exits 0, with a
 * line that makes its SHA-256 the agent's alone. A content denied on the
 * whole node, which no real program has.
 */
export const HASH_SENTINEL_TEXT = "#!/bin/sh\n" +
  "# aegisbpf enforcement proof: this content is denied by its SHA-256 on every node\n" +
  "exit 0\n";

/** Is this rule id one of the agent's own canary rules? */
export function isCanaryRuleId(id: number): boolean {
  return id >= CANARY_RULE_ID_BASE && id < CANARY_RULE_ID_END;
}

export const CANARY_CGROUP_NAME = "aegisbpf.canary";
const SENTINEL_TEXT =
  "aegisbpf enforcement-proof sentinel: the agent's probes must never open it\n";

/** What a probe saw. */
export interface ProbeOutcome {
  /** the open was denied with EPERM */
  denied: boolean;
  /** what happened, for the report and the log */
  detail: string;
}

/**
 * Judge a probe from its exit and stderr (LC_ALL=C). Exit 0: the open
 * succeeded (not enforced). "Operation not permitted": EPERM, the rule's
 * answer. Anything else (EACCES, ENOENT, a signal, a timeout) is a failed
 * proof with what was seen.
 */
export function judgeProbe(
  r: { code: number; signal: string | null; stderr: string; timedOut?: boolean },
  op: "open" | "exec" = "open",
): ProbeOutcome {
  const err = r.stderr.replace(/\s+/g, " ").trim().slice(0, 200);
  if (r.timedOut) {
    return { denied: false, detail: "the probe did not finish within its time limit" };
  }
  if (r.signal) return { denied: false, detail: `the probe was killed by ${r.signal}` };
  if (r.code === 0) {
    return {
      denied: false,
      detail: op === "open"
        ? "the probe opened the sentinel: the kernel did not deny the canary rule"
        : "the probe ran the exec sentinel (a script that only exits): the kernel did not " +
          "deny the canary rule",
    };
  }
  if (r.code === 97) return { denied: false, detail: "the probe was not released (stdin closed)" };
  if (/Operation not permitted/i.test(err)) {
    return { denied: true, detail: `${op} of the sentinel denied with EPERM` };
  }
  return {
    denied: false,
    detail: `the ${op} failed, but not with EPERM (exit ${r.code}): ${err || "(no message)"}`,
  };
}

/** The sentinel's identity: kernel dev and inode. */
export interface SentinelId {
  path: string;
  dev: number;
  ino: bigint;
}

/**
 * Create (or check) the sentinel: a regular file owned by root, mode 0600,
 * in a 0700 directory. Anything else at the path (a symlink, another
 * owner, a directory) is removed and the file made again.
 */
export function ensureSentinel(dir: string): SentinelId {
  return ensureFile(dir, "file.sentinel", SENTINEL_TEXT, 0o600);
}

/**
 * The exec sentinel `<dir>/aegisbpf-canary`: a 0700 root shell script that
 * only exits 0 — all that runs if the exec is not denied. Kept in the state
 * directory (/var/lib), not the runtime directory: /run may be noexec.
 */
export function ensureExecSentinel(dir: string): SentinelId {
  return ensureFile(dir, CANARY_COMM, "#!/bin/sh\nexit 0\n", 0o700);
}

/**
 * The exec-hash sentinel `<dir>/aegisbpf-hcanary` (HASH_SENTINEL_TEXT, 0700
 * root): the content the exec-hash canary denies. Beside the exec sentinel.
 */
export function ensureHashSentinel(dir: string): SentinelId {
  return ensureFile(dir, HASH_CANARY_NAME, HASH_SENTINEL_TEXT, 0o700);
}

/**
 * The SHA-256 of HASH_SENTINEL_TEXT (a constant, so the canary entry can be
 * built synchronously; canary_test.ts checks it against WebCrypto).
 */
export const HASH_SENTINEL_SHA256 =
  "a7aca3668b2cb097efaa147f11e85532bd0644eb3b8535133d3ef0cc9a9cfc85";

/**
 * The exec-hash canary rule: deny_binary_hash of the sentinel's content, for
 * any generation. It needs no switch of its own (HASH_CANARY_FLAGS is 0):
 * it must not make every exec on the node hash; it is checked whenever the
 * operator's policy has a content list (hashListsOn), and proven only then.
 */
export function hashCanaryEntry(): CompiledEntry {
  return {
    map: "aegis_deny_hash",
    key: (gen) => hashKey(HASH_SENTINEL_SHA256, gen),
    value: ruleValue(CANARY_HASH_RULE_ID, AEGIS_RULE_DENY, AEGIS_RT_HASH),
  };
}

export const HASH_CANARY_FLAGS = 0;

/**
 * Does the exec program hash under these policy flags (the kernel's
 * aegis_id_lists(flags, 0), bpf/lib/exec_identity.h): a deny list, an
 * allowlist or a trusted list?
 */
export function hashListsOn(flags: number): boolean {
  return (flags & (AEGIS_POL_EXEC_HASH | AEGIS_POL_EXEC_ALLOWLIST | AEGIS_POL_EXEC_TRUSTED)) !== 0;
}

function ensureFile(dir: string, name: string, text: string, mode: number): SentinelId {
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ds = Deno.lstatSync(dir);
  if (!ds.isDirectory) {
    throw new AegisError("PROOF_SENTINEL", `${dir} is not a directory; the proof needs its own`);
  }
  Deno.chmodSync(dir, 0o700);
  const path = `${dir}/${name}`;
  let st: Deno.FileInfo | null = null;
  try {
    st = Deno.lstatSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const uid = Deno.statSync(dir).uid; // ours: made (or checked) just above
  if (
    st && (!st.isFile || st.uid !== uid || ((st.mode ?? 0) & 0o777) !== mode ||
      st.size !== text.length)
  ) {
    Deno.removeSync(path, { recursive: true });
    st = null;
  }
  if (!st) {
    Deno.writeTextFileSync(path, text, { mode, createNew: true });
    Deno.chmodSync(path, mode);
    st = Deno.lstatSync(path);
  }
  return { path, dev: kernelDev(st.dev), ino: BigInt(st.ino!) };
}

/** The canary rule of a sentinel, for any generation. */
export function fileCanaryEntry(s: SentinelId): CompiledEntry {
  return {
    map: "aegis_deny_inode",
    key: (gen) => inodeKey(s.dev, s.ino, gen),
    value: ruleValue(CANARY_FILE_RULE_ID, AEGIS_RULE_DENY, AEGIS_RT_INODE),
  };
}

/** The policy flag the canary needs in a generation. */
export const FILE_CANARY_FLAGS = AEGIS_POL_FILE_RULES;

/** The exec canary rule: deny_comm of CANARY_COMM, for any generation. */
export function execCanaryEntry(): CompiledEntry {
  return {
    map: "aegis_deny_comm",
    key: (gen) => commKey(CANARY_COMM, gen),
    value: ruleValue(CANARY_EXEC_RULE_ID, AEGIS_RULE_DENY, AEGIS_RT_COMM),
  };
}

export const EXEC_CANARY_FLAGS = AEGIS_POL_EXEC_RULES;

/** The network canary rule: deny TCP to CANARY_NET_ADDR:CANARY_NET_PORT, for any generation. */
export function netCanaryEntry(): CompiledEntry {
  const tcp = parseIpPort(`${CANARY_NET_ADDR}:${CANARY_NET_PORT}:tcp`);
  return {
    map: ipPortKey(tcp, 0).map,
    key: (gen) => ipPortKey(tcp, gen).key,
    value: ruleValue(CANARY_NET_RULE_ID, AEGIS_RULE_DENY, AEGIS_RT_IP_PORT),
  };
}

export const NET_CANARY_FLAGS = AEGIS_POL_NET_RULES | AEGIS_POL_NET_IP_PORT;

/**
 * Judge the network probe: EPERM is the canary rule's answer; a connect
 * that went on (connected, in progress, refused by the loopback stack) was
 * let through; anything else is a failed proof with what was seen.
 */
export function judgeConnect(r: ConnectProbe): ProbeOutcome {
  const to = `${CANARY_NET_ADDR}:${CANARY_NET_PORT}`;
  if (r.cgroupErrno !== 0) {
    return {
      denied: false,
      detail: r.cgroupErrno === -1
        ? "the network probe never reported (it did not start or was killed)"
        : `the network probe could not leave the agent's cgroup: ${errnoName(r.cgroupErrno)}`,
    };
  }
  if (r.timedOut) {
    return { denied: false, detail: "the probe did not finish within its time limit" };
  }
  if (r.connectErrno === null) {
    return {
      denied: false,
      detail: `the probe could not make a socket: ${errnoName(r.socketErrno ?? 0)}`,
    };
  }
  if (r.connectErrno === 1) return { denied: true, detail: `connect to ${to} denied with EPERM` };
  if ([0, 111, 115].includes(r.connectErrno)) {
    return {
      denied: false,
      detail: `the probe's connect to ${to} was let through (${
        r.connectErrno === 0 ? "connected" : errnoName(r.connectErrno)
      }): the kernel did not deny the canary rule`,
    };
  }
  return {
    denied: false,
    detail: `the connect failed, but not with EPERM: ${errnoName(r.connectErrno)}`,
  };
}

/** What ensureInGeneration needs of the maps. */
export interface CanaryMaps {
  map(name: string): {
    lookup(key: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> | null;
    update(key: Uint8Array<ArrayBuffer>, value: Uint8Array<ArrayBuffer>): void;
    delete(key: Uint8Array<ArrayBuffer>): boolean;
  };
}

const POLICY_FLAGS_OFF = ABI_LAYOUT.structs.aegis_policy.fields.flags.offset;

/** The aegis_policy flags of generation `gen` (0 when it has none). */
export function policyFlags(maps: CanaryMaps, gen: number): number {
  const pv = maps.map("aegis_policy").lookup(u32Key(gen));
  return pv
    ? Number(
      new DataView(pv.buffer, pv.byteOffset, pv.byteLength).getBigUint64(POLICY_FLAGS_OFF, true),
    )
    : 0;
}

/**
 * Make sure generation `gen` holds `entry` and has `flags` set (an apply
 * carries the canary already; this repairs what anything else removed).
 * Returns true when something had to be written.
 */
export function ensureInGeneration(
  maps: CanaryMaps,
  gen: number,
  entry: CompiledEntry,
  flags: number,
): boolean {
  let wrote = false;
  const m = maps.map(entry.map);
  const k = entry.key(gen);
  const cur = m.lookup(k);
  if (!cur || !sameBytes(cur, entry.value)) {
    m.update(k, entry.value);
    wrote = true;
  }
  const have = policyFlags(maps, gen);
  if ((have & flags) !== flags) {
    maps.map("aegis_policy").update(u32Key(gen), policyValue(have | flags));
    wrote = true;
  }
  return wrote;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The kernel surface: the policy switches with no rule map (the operator
 * turns them on for the whole node), each proven only while the live
 * generation has it on and its hook is attached. No canary rule: the probe
 * makes an attempt that is harmless when let through (probeKernel).
 */
export const KERNEL_SWITCHES = [
  {
    op: "ptrace",
    flag: AEGIS_POL_DENY_PTRACE,
    hook: "ptrace_access_check",
    section: "lsm/ptrace_access_check",
    what: "ptrace attach",
    name: "deny_ptrace",
  },
  {
    op: "module",
    flag: AEGIS_POL_DENY_MODULE,
    hook: "kernel_load_data",
    section: "lsm/kernel_load_data",
    what: "module load (init_module)",
    name: "deny_module_load",
  },
  {
    op: "bpf",
    flag: AEGIS_POL_DENY_BPF,
    hook: "bpf",
    section: "lsm/bpf",
    what: "bpf()",
    name: "deny_bpf",
  },
] as const satisfies readonly {
  op: KernelOp;
  flag: number;
  hook: string;
  section: string;
  what: string;
  name: string;
}[];
export type KernelSwitch = (typeof KERNEL_SWITCHES)[number];

/**
 * Judge the kernel probe: an attempt passes only with EPERM *and* a deny
 * counted by the agent's own hook meanwhile (`denies`: the hook's block
 * count after minus before); EPERM alone may come from another LSM or a
 * sysctl (Yama, modules_disabled) and proves nothing about the agent.
 * `deniedBy` lists the switches the agent's hooks denied (for self-test
 * accounting).
 */
export function judgeKernel(
  r: KernelProbe,
  switches: readonly KernelSwitch[],
  denies: Partial<Record<KernelOp, bigint>>,
): ProbeOutcome & { deniedBy: KernelSwitch[] } {
  if (r.cgroupErrno !== 0) {
    return {
      denied: false,
      deniedBy: [],
      detail: r.cgroupErrno === -1
        ? "the kernel probe never reported (it did not start or was killed)"
        : `the kernel probe could not leave the agent's cgroup: ${errnoName(r.cgroupErrno)}`,
    };
  }
  if (r.timedOut) {
    return {
      denied: false,
      deniedBy: [],
      detail: "the probe did not finish within its time limit",
    };
  }
  const parts: string[] = [];
  const deniedBy: KernelSwitch[] = [];
  for (const k of switches) {
    const e = r.results[k.op];
    if (e === undefined || e === null) {
      parts.push(`${k.what} could not be attempted`);
    } else if (e === 1 && (denies[k.op] ?? 0n) > 0n) {
      deniedBy.push(k);
      parts.push(`${k.what} denied with EPERM`);
    } else if (e === 1) {
      parts.push(
        `${k.what} got EPERM, but not from the agent (its ${k.hook} hook counted no deny): ` +
          `something else refused it, so ${k.name} is not proven`,
      );
    } else {
      parts.push(
        `${k.what} was let through (${e === 0 ? "it succeeded" : errnoName(e)}): the kernel ` +
          `did not deny it with ${k.name} on`,
      );
    }
  }
  return { denied: deniedBy.length === switches.length, deniedBy, detail: parts.join("; ") };
}

/**
 * `<parent>/aegisbpf.canary`, created 0755 if missing, and its cgroup id.
 * `parent` is the cgroup the agent was started in (SelfCgroup.parent): the
 * canary is a sibling of the agent's own cgroup, never inside it.
 */
export function canaryCgroup(parent: string): { path: string; id: number } {
  const path = `${parent}/${CANARY_CGROUP_NAME}`;
  Deno.mkdirSync(path, { recursive: true, mode: 0o755 });
  return { path, id: Deno.statSync(path).ino! };
}

/** Probe options (tests shorten the limit). */
export interface ProbeOptions {
  /** the shell that performs the open */
  shell?: string;
  /** milliseconds before the probe is killed */
  timeoutMs?: number;
}

/**
 * Open `sentinel` from a probe process in cgroup `cgroupDir` and judge the
 * answer. Never throws for what the probe saw; throws only when the probe
 * cannot be started at all (the caller reports that as a failed proof too).
 */
export function probeOpen(
  sentinel: string,
  cgroupDir: string,
  opts: ProbeOptions = {},
): Promise<ProbeOutcome> {
  // `:` reads nothing
  return probe('read -r _ || exit 97; : <"$1"', "open", sentinel, cgroupDir, opts);
}

/**
 * Exec `sentinel` (ensureExecSentinel, or ensureHashSentinel) from a probe
 * process in `cgroupDir`: the deny_comm canary (or the exec-hash canary)
 * must refuse it with EPERM. If it is not refused,
 * the script exits 0 and nothing else runs.
 */
export function probeExec(
  sentinel: string,
  cgroupDir: string,
  opts: ProbeOptions = {},
): Promise<ProbeOutcome> {
  return probe('read -r _ || exit 97; exec "$1"', "exec", sentinel, cgroupDir, opts);
}

async function probe(
  script: string,
  op: "open" | "exec",
  sentinel: string,
  cgroupDir: string,
  opts: ProbeOptions,
): Promise<ProbeOutcome> {
  const child = new Deno.Command(opts.shell ?? "/bin/sh", {
    // wait for the release line (the move into the canary cgroup comes first)
    args: ["-c", script, "aegisbpf-proof", sentinel],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
    clearEnv: true,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
  }).spawn();
  const writer = child.stdin.getWriter();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, opts.timeoutMs ?? 5000);
  try {
    try {
      Deno.writeTextFileSync(`${cgroupDir}/cgroup.procs`, `${child.pid}\n`);
    } catch (e) {
      child.kill("SIGKILL");
      await writer.close().catch(() => {});
      await child.output().catch(() => {});
      return {
        denied: false,
        detail: `cannot move the probe into ${cgroupDir}: ${e instanceof Error ? e.message : e}`,
      };
    }
    await writer.write(new TextEncoder().encode("go\n")).catch(() => {});
    await writer.close().catch(() => {});
    const out = await child.output();
    return judgeProbe({
      code: out.code,
      signal: out.signal,
      stderr: new TextDecoder().decode(out.stderr),
      timedOut,
    }, op);
  } finally {
    clearTimeout(timer);
  }
}
