/**
 * bench/vm/enforce_bench: what aegisbpf as shipped costs the operations it
 * guards, inside a VM guest with BPF LSM on (bench/vm/run.sh boots it).
 *
 * Configurations, all in one boot, interleaved: every round measures each of
 * them once, in this order (docs/benchmarks.md, "bench/vm"):
 *   a.  agent absent: no BPF link of an LSM or tracepoint program exists;
 *   b.  floor: bench/vm/null.bpf.c, programs that return 0, one on each hook
 *       (and as many per hook) as `aegisbpf run` attaches by default — the
 *       agent's own planPrograms decides which — pinned by this process;
 *   b2. the same with a null lsm/inode_permission too: the floor of g;
 *   c.  `aegisbpf run` as shipped (default options, enforce), fresh state,
 *       no policy applied;
 *   d.  + `aegisbpf policy apply` of 1,000 deny_path rules (files in tmpfs);
 *   h.  + `aegisbpf policy apply` of those 1,000 and 10,000 deny_binary_hash
 *       (random digests and one of a copy of `true` that is not measured):
 *       every exec is hashed in the kernel; measured for exec only;
 *   e.  + `aegisbpf policy apply` (replacing h) of 65,536 inode rules (those 1,000 paths and
 *       64,536 deny_inode) and 16,384 IPv4 deny_cidr, none matching what the
 *       benchmark touches or 127.0.0.1;
 *   f.  pins only: the daemon SIGKILLed after e, its pinned programs enforce
 *       with no user space;
 *   g.  `aegisbpf run --lsm-hook both --policy <e's policy>` (fresh state).
 * Then the pins are removed with the code `aegisbpf uninstall` runs and the
 * next round starts with a.
 *
 * Operations (bench/vm/ops.c, one process per measurement, N calibrated once
 * with the agent absent to take about AEGIS_BENCH_TARGET_MS): open+close of a
 * file three directories deep (/tmp/aegis-bench-…/file: lookups in /, /tmp
 * and the bench directory), open+close of N distinct files (each once),
 * TCP connect to a loopback listener (+accept, close), fork+exec of a static
 * `true` in tmpfs, fork+wait. g and b2 measure the first only. For c, d, e
 * and g an idle window of the same length measures the daemon alone.
 *
 * Per window `ops` also reads kernel.bpf_stats_enabled counters of every
 * pinned link's program (run_time_ns, run_cnt) and the daemon's CPU ticks
 * (/proc/PID/stat utime+stime) and VmRSS. A benchmark, not a test: it never
 * fails on timing, only when a configuration cannot be set up — positive
 * controls: a file under a deny rule must be denied in d, e, f and g, the
 * daemon must say ENFORCE, null programs must run on the open path, and
 * nothing may be attached when the agent is absent.
 *
 * usage: enforce_bench.ts <ops> <static true> <aegisbpf launcher> <null.bpf.o>
 * env:   AEGIS_BENCH_TARGET_MS (1500), AEGIS_BENCH_ROUNDS (7),
 *        AEGIS_BENCH_COLD_FILES (calibrated, 10,000–200,000),
 *        AEGIS_BENCH_BPF_STATS (1: kernel.bpf_stats_enabled=1 for the run)
 * Destructive for the machine it runs on (wipes /var/lib/aegisbpf, removes
 * the pins under /sys/fs/bpf/aegisbpf): refuses to run outside the VM harness.
 *
 * @module
 */
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import { AEGIS_CFG_GENERATION } from "../../src/bpf/abi_gen.ts";
import {
  type FileHookChoice,
  lsmHookOf,
  planPrograms,
  uninstallPins,
} from "../../src/bpf/engine.ts";
import { BpfObject } from "../../src/bpf/object.ts";
import { PinnedMaps } from "../../src/bpf/pins.ts";
import { kernelDev, u32Key } from "../../src/bpf/rule_codec.ts";
import { aegisPaths } from "../../src/contracts.ts";
import {
  cidrEntries,
  fix,
  inodeEntries,
  int,
  median,
  parseOps,
  prng,
  type Sample,
  spread,
  table,
} from "./report.ts";

const [OPS, TRUE_STATIC, AGENT, NULL_OBJ] = Deno.args;
if (!OPS || !TRUE_STATIC || !AGENT || !NULL_OBJ) {
  throw new Error("usage: enforce_bench.ts <ops> <static true> <aegisbpf launcher> <null.bpf.o>");
}
if (Deno.env.get("AEGIS_VM") !== "1") {
  throw new Error(
    "enforce_bench wipes /var/lib/aegisbpf and the agent's pins: it runs only in a VM guest " +
      "(bash bench/vm/run.sh)",
  );
}
const TARGET_MS = Number(Deno.env.get("AEGIS_BENCH_TARGET_MS") ?? "1500");
const ROUNDS = Number(Deno.env.get("AEGIS_BENCH_ROUNDS") ?? "7");
const BPF_STATS = (Deno.env.get("AEGIS_BENCH_BPF_STATS") ?? "1") !== "0";
const PATH_RULES = 1_000;
const INODE_RULES = 65_536;
const CIDR_RULES = 16_384;
const HASH_RULES = 10_000;

const enc = new TextEncoder();
function out(line = ""): void {
  Deno.stdout.writeSync(enc.encode(line + "\n"));
}
const sec = (ms: number): string => (ms / 1000).toFixed(1);
const readOr = (path: string, dflt = "?"): string => {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return dflt;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- the machine ---------------------------------------------------------------

const paths = aegisPaths();
const PIN_ROOT = paths.pinRoot;
const STATE_DIR = paths.stateDir;
const NULL_PINS = "/sys/fs/bpf/aegis-bench-null";
const cpuModel = /model name\s*:\s*(.*)/.exec(readOr("/proc/cpuinfo", ""))?.[1] ?? "?";
out(
  `kernel ${Deno.osRelease()}, ${navigator.hardwareConcurrency} vCPU (${cpuModel}), ` +
    `host CPU: ${Deno.env.get("AEGIS_BENCH_HOST_CPU") ?? "?"}`,
);
out(`active LSMs: ${readOr("/sys/kernel/security/lsm")}`);
const ICOUNT = Deno.env.get("AEGIS_BENCH_ICOUNT") ?? "?";
out(
  ICOUNT === "off" || ICOUNT === "?"
    ? `QEMU clock: the host's (TCG without icount: other work on the host shows in every number)`
    : `QEMU clock: -icount shift=${ICOUNT}: guest time is ${2 ** Number(ICOUNT)} ns per guest ` +
      `instruction (deterministic; a time here counts instructions)`,
);
const CLOCKSOURCE = readOr("/sys/devices/system/clocksource/clocksource0/current_clocksource");
out(
  `clocksource: ${CLOCKSOURCE} (available: ${
    readOr("/sys/devices/system/clocksource/clocksource0/available_clocksource")
  })`,
);
const STATS_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled";
const statsBefore = readOr(STATS_SYSCTL);
if (BPF_STATS) Deno.writeTextFileSync(STATS_SYSCTL, "1");
out(`kernel.bpf_stats_enabled: ${readOr(STATS_SYSCTL)} (was ${statsBefore})`);
out(`rounds ${ROUNDS}, ~${TARGET_MS} ms per measurement`);

// ---- files ------------------------------------------------------------------------

const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-bench-" });
const FILE = `${dir}/file`;
Deno.writeTextFileSync(FILE, "benchmark");
const CONTROL = `${dir}/control`;
Deno.writeTextFileSync(CONTROL, "denied by the positive control");
const TRUE_TMP = `${dir}/true`;
Deno.copyFileSync(TRUE_STATIC, TRUE_TMP);
Deno.chmodSync(TRUE_TMP, 0o755);
/** h's positive control: `true` with one byte more (another digest), listed in h's policy. */
const TRUE_DENIED = `${dir}/true-denied`;
Deno.writeFileSync(TRUE_DENIED, new Uint8Array([...Deno.readFileSync(TRUE_STATIC), 0]));
Deno.chmodSync(TRUE_DENIED, 0o755);
const COLD = `${dir}/c`;
const RULES_DIR = `${dir}/rules`;
Deno.mkdirSync(RULES_DIR);

function ops(args: string[]): string {
  const r = new Deno.Command(OPS, { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!r.success) {
    throw new Error(`ops ${args.join(" ")} failed: ${new TextDecoder().decode(r.stderr)}`);
  }
  return new TextDecoder().decode(r.stdout);
}

// ---- the agent's plan and the null floor ---------------------------------------------

const shim = await openEmbeddedShim("/run/aegis-bench");
const aegisObj = BpfObject.open(shim, await bpfObjectBytes());
const hookKey = (section: string): string => lsmHookOf(section) ?? section;

/** Sections `aegisbpf run --lsm-hook H` attaches on this kernel (the daemon's own plan). */
function plannedSections(fileHook: FileHookChoice): string[] {
  return planPrograms(
    aegisObj.programs,
    aegisObj.sections,
    // self-protection is on by default (its guard programs are attached too)
    { fileHook, execEvents: true, openEvents: false, mode: "lsm", selfProtect: true },
    (n) => shim.btfHasFunc(n),
  ).filter((p) => p.available).map((p) => p.section);
}

const nullObj = BpfObject.open(shim, Deno.readFileSync(NULL_OBJ), "aegis_null");
nullObj.selectPrograms((_p, s) => {
  const h = lsmHookOf(s);
  return h === null || shim.btfHasFunc(`bpf_lsm_${h}`);
});
nullObj.load();

/** One null program per program the agent attaches with `fileHook`, on the same hook. */
function floorPrograms(fileHook: FileHookChoice): string[] {
  const used = new Set<string>();
  for (const s of plannedSections(fileHook)) {
    const p = nullObj.programs.find((q) =>
      !used.has(q) && hookKey(nullObj.sectionOf(q)) === hookKey(s)
    );
    if (!p) {
      throw new Error(`bench/vm/null.bpf.c has no (further) null program for ${s}: add one`);
    }
    used.add(p);
  }
  return [...used];
}
const FLOOR = floorPrograms("file");
const FLOOR_BOTH = floorPrograms("both");
out(`aegisbpf run attaches by default: ${plannedSections("file").join(", ")}`);
out(`floor (null programs): ${FLOOR.map((p) => `${p} (${nullObj.sectionOf(p)})`).join(", ")}`);

let nullAttached: string[] = [];
function attachNull(progs: string[]): void {
  Deno.mkdirSync(NULL_PINS, { recursive: true });
  for (const p of progs) {
    if (nullAttached.includes(p)) continue;
    nullObj.attach(p);
    nullObj.pinLink(p, `${NULL_PINS}/${p}`);
    nullAttached.push(p);
  }
}
function detachNull(): void {
  for (const p of nullAttached) {
    Deno.removeSync(`${NULL_PINS}/${p}`);
    nullObj.detach(p);
  }
  nullAttached = [];
}

/** Hook of a pinned link's program (the agent's links and ours are named after it). */
function hookOfProgram(prog: string): string {
  const s = aegisObj.sectionOf(prog) || nullObj.sectionOf(prog);
  return s ? hookKey(s) : "?";
}

const BPF_PROG_TYPE_TRACEPOINT = 5;
const BPF_PROG_TYPE_LSM = 29;
const HOOK_TYPES = [BPF_PROG_TYPE_LSM, BPF_PROG_TYPE_TRACEPOINT].map(String);
/**
 * What keeps "agent absent" from being true: links of LSM or tracepoint
 * programs, links being freed (the kernel detaches an unpinned link from a
 * work queue; "?"), and LSM or tracepoint programs other than our detached
 * null programs.
 */
function attachedLeft(): string[] {
  const rows = (what: string) =>
    ops([what]).trim().split("\n").filter((l) => l.startsWith(`${what.slice(0, -1)} `)).map((
      l,
    ) => l.split(" "));
  const links = rows("links").filter((f) => f[4] === "?" || HOOK_TYPES.includes(f[4]))
    .map((f) => `link ${f[1]} (prog ${f[3]} ${f[5]})`);
  const progs = rows("progs").filter((f) =>
    f[2] === "?" || (HOOK_TYPES.includes(f[2]) && !f[3].startsWith("null_"))
  ).map((f) => `prog ${f[1]} ${f[3]}`);
  return [...links, ...progs];
}

/** Wait until nothing is attached and the control file opens; ms waited. */
async function nothingAttached(): Promise<number> {
  const t = performance.now();
  let left = attachedLeft();
  for (let i = 0; i < 600 && (left.length > 0 || tryOpen(CONTROL) !== "ok"); i++) {
    await sleep(50);
    left = attachedLeft();
  }
  if (left.length > 0) throw new Error(`agent absent, yet still loaded: ${left.join(", ")}`);
  control("ok", "agent absent");
  return performance.now() - t;
}

/**
 * Wait until the daemon is quiet: under 5 % of a CPU over one second (it
 * verifies rules, compiles, collects garbage after a start or an apply).
 * Measurements are of the steady state; this wait is reported as a setup step.
 */
async function quiet(pid: number): Promise<number> {
  const t = performance.now();
  const ticks = () => {
    const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
    return Number(f[11]) + Number(f[12]);
  };
  for (let i = 0; i < 180; i++) {
    const t0 = ticks(), w0 = performance.now();
    await sleep(1000);
    const cpu = (ticks() - t0) / 100 / ((performance.now() - w0) / 1000);
    if (cpu < 0.05) return performance.now() - t;
  }
  out(`  (the daemon was not quiet after 180 s; measuring anyway)`);
  return performance.now() - t;
}

function tryOpen(path: string): "ok" | "denied" | string {
  try {
    Deno.openSync(path).close();
    return "ok";
  } catch (e) {
    return e instanceof Deno.errors.PermissionDenied ? "denied" : String(e);
  }
}
function execControl(want: "ok" | "denied", where: string): void {
  let got: string;
  try {
    const o = new Deno.Command(TRUE_DENIED).outputSync();
    got = o.success ? "ok" : `exit ${o.code}`;
  } catch (e) {
    got = e instanceof Deno.errors.PermissionDenied ? "denied" : String(e);
  }
  if (got !== want) {
    throw new Error(`${where}: exec of ${TRUE_DENIED} was ${got}, expected ${want}`);
  }
}
function control(want: "ok" | "denied", where: string): void {
  const got = tryOpen(CONTROL);
  if (got !== want) {
    throw new Error(`${where}: the control file ${CONTROL} was ${got}, expected ${want}`);
  }
}

// ---- policies ------------------------------------------------------------------------

const fileDev = kernelDev(Deno.statSync(FILE).dev);
ops(["mkfiles", String(PATH_RULES - 1), `${RULES_DIR}/r`]);
const denyPaths = [
  CONTROL,
  ...Array.from(
    { length: PATH_RULES - 1 },
    (_, i) => `${RULES_DIR}/r${String(i).padStart(7, "0")}`,
  ),
];
const POLICY_1K = `${dir}/policy-1k.conf`;
Deno.writeTextFileSync(POLICY_1K, ["version=2", "[deny_path]", ...denyPaths, ""].join("\n"));
const POLICY_65K = `${dir}/policy-65k.conf`;
Deno.writeTextFileSync(
  POLICY_65K,
  [
    "version=2",
    "[deny_path]",
    ...denyPaths,
    "[deny_inode]",
    ...inodeEntries(fileDev, INODE_RULES - PATH_RULES),
    "[deny_cidr]",
    ...cidrEntries(CIDR_RULES),
    "",
  ].join("\n"),
);
const POLICY_HASH = `${dir}/policy-hash.conf`;
{
  const hex = (b: Uint8Array) => [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  const listed = hex(
    new Uint8Array(await crypto.subtle.digest("SHA-256", Deno.readFileSync(TRUE_DENIED))),
  );
  const rnd = prng(3);
  const digests = Array.from(
    { length: HASH_RULES - 1 },
    () => hex(Uint8Array.from({ length: 32 }, () => Math.floor(rnd() * 256))),
  );
  Deno.writeTextFileSync(
    POLICY_HASH,
    [
      "version=3",
      "[deny_path]",
      ...denyPaths,
      "[deny_binary_hash]",
      `sha256:${listed}`,
      ...digests.map((d) => `sha256:${d}`),
      "",
    ].join("\n"),
  );
}
out(
  `policies: ${POLICY_1K} (${PATH_RULES} deny_path), ${POLICY_65K} (${PATH_RULES} deny_path + ` +
    `${INODE_RULES - PATH_RULES} deny_inode + ${CIDR_RULES} deny_cidr, ` +
    `${(Deno.statSync(POLICY_65K).size / 1e6).toFixed(1)} MB)`,
);

/**
 * A fresh state directory, as on a new node, holding only map_sizes.json
 * with what a failed apply of e's policy over d's would have recorded: during
 * an apply both generations sit in aegis_deny_inode (1,000 live + 65,536 new
 * > the default 65,536), and the agent's documented answer is to size the map
 * at the next fresh start (docs/policy.md, "Map sizes"); the same for h's
 * 10,000 content rules in aegis_deny_hash (default 4,096).
 */
function freshState(): void {
  try {
    Deno.removeSync(STATE_DIR, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}
function seedState(): void {
  freshState();
  Deno.mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });
  Deno.writeTextFileSync(
    `${STATE_DIR}/map_sizes.json`,
    JSON.stringify({ aegis_deny_inode: INODE_RULES + PATH_RULES, aegis_deny_hash: HASH_RULES }),
    { mode: 0o600 },
  );
}

// ---- the daemon ------------------------------------------------------------------------

class Daemon {
  readonly proc: Deno.ChildProcess;
  readonly pid: number;
  readonly errPath: string;
  readonly t0 = performance.now();
  exited: Deno.CommandStatus | null = null;

  constructor(args: string[], tag: string) {
    this.errPath = `${dir}/daemon-${tag}.err`;
    // events (stdout, the default --log) to a tmpfs file, as a journal would take them
    this.proc = new Deno.Command("bash", {
      args: ["-c", 'exec "$0" run "$@" >"$AEGIS_BENCH_OUT" 2>"$AEGIS_BENCH_ERR"', AGENT, ...args],
      env: { AEGIS_BENCH_OUT: `${dir}/daemon-${tag}.out`, AEGIS_BENCH_ERR: this.errPath },
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.pid = this.proc.pid;
    this.proc.status.then((s) => this.exited = s);
  }

  tail(n = 25): string {
    return readOr(this.errPath, "").split("\n").slice(-n).join("\n");
  }

  /** Until "agent started": ms since spawn, the state and the attached sections. */
  async started(): Promise<{ ms: number; hooks: string[] }> {
    for (;;) {
      const m = /agent started, (\w+): ([^;\n]*)/.exec(readOr(this.errPath, ""));
      if (m) {
        if (m[1] !== "ENFORCE") {
          throw new Error(`the daemon started in ${m[1]}, not ENFORCE:\n${this.tail()}`);
        }
        return { ms: performance.now() - this.t0, hooks: m[2].split(", ").sort() };
      }
      if (this.exited) throw new Error(`the daemon exited (${this.exited.code}):\n${this.tail()}`);
      if (performance.now() - this.t0 > 600_000) {
        throw new Error(`the daemon did not start in 600 s:\n${this.tail()}`);
      }
      await sleep(100);
    }
  }

  async stop(signal: Deno.Signal): Promise<number> {
    const t = performance.now();
    this.proc.kill(signal);
    const s = await this.proc.status;
    if (signal === "SIGTERM" && s.code !== 0) {
      throw new Error(`the daemon's SIGTERM stop exited ${s.code}:\n${this.tail()}`);
    }
    return performance.now() - t;
  }
}

async function cli(args: string[]): Promise<number> {
  const t = performance.now();
  const r = await new Deno.Command(AGENT, { args, stdout: "piped", stderr: "piped" }).output();
  if (r.code !== 0) {
    const d = new TextDecoder();
    throw new Error(
      `aegisbpf ${args.join(" ")} exited ${r.code}:\n${d.decode(r.stdout)}${d.decode(r.stderr)}`,
    );
  }
  return performance.now() - t;
}

function checkHooks(got: string[], fileHook: FileHookChoice): void {
  const want = plannedSections(fileHook).sort();
  if (got.join() !== want.join()) {
    throw new Error(
      `the daemon attached ${got.join(", ")}; its plan (the floor's model) says ${want.join(", ")}`,
    );
  }
}

/** Generation, policy flags and rule counts in the agent's pinned maps. */
function pinnedState(): string {
  using maps = new PinnedMaps(shim, PIN_ROOT);
  const gen = Number(maps.map("aegis_config").sumU64(AEGIS_CFG_GENERATION));
  const v = maps.map("aegis_policy").lookup(u32Key(gen));
  const flags = v ? new DataView(v.buffer).getBigUint64(0, true) : 0n;
  const inode = maps.map("aegis_deny_inode");
  const cidr = maps.map("aegis_deny_cidr4");
  return `generation ${gen}, policy flags 0x${flags.toString(16)}, aegis_deny_inode ` +
    `${inode.keys().length}/${inode.maxEntries}, aegis_deny_cidr4 ${cidr.keys().length}/` +
    `${cidr.maxEntries}`;
}

// ---- operations ------------------------------------------------------------------------

type Op = "open" | "cold" | "connect" | "exec" | "execcold" | "fork";
const ALL_OPS: Op[] = ["open", "cold", "connect", "exec", "execcold", "fork"];
/** AEGIS_BENCH_OPS=exec,open: a quick look at some rows (the documented tables use all) */
const OP_LIST: Op[] = (() => {
  const want = Deno.env.get("AEGIS_BENCH_OPS");
  if (!want) return ALL_OPS;
  const list = want.split(",").map((s) => s.trim());
  const bad = list.filter((s) => !(ALL_OPS as string[]).includes(s));
  if (bad.length > 0 || list.length === 0) {
    throw new Error(`AEGIS_BENCH_OPS: unknown operation(s) ${bad.join(", ")}; known: ${ALL_OPS}`);
  }
  return list as Op[];
})();
const OP_NAMES: Record<Op | "idle", string> = {
  open: "open+close, 3 dirs deep",
  cold: "open+close, distinct files",
  connect: "TCP connect 127.0.0.1 (+accept, close)",
  exec: "fork+exec static true (tmpfs)",
  execcold: "fork+exec, chmod before each (no verified-file cache hit)",
  fork: "fork+wait",
  idle: "idle (sleep), per ms",
};
const n: Record<Op, number> = {
  open: 2_000,
  cold: 0,
  connect: 200,
  exec: 10,
  execcold: 10,
  fork: 20,
};

function opArgs(op: Op | "idle"): string[] {
  switch (op) {
    case "open":
      return ["open", String(n.open), FILE];
    case "cold":
      return ["openmany", String(n.cold), COLD];
    case "connect":
      return ["connect", String(n.connect)];
    case "exec":
      return ["exec", String(n.exec), TRUE_TMP];
    case "execcold":
      return ["execcold", String(n.execcold), TRUE_TMP];
    case "fork":
      return ["fork", String(n.fork)];
    case "idle":
      return ["idle", String(TARGET_MS)];
  }
}

// ---- configurations ------------------------------------------------------------------------

interface Config {
  id: string;
  label: string;
  ops: Op[];
  /** the daemon runs: measure its CPU, and an idle window */
  daemon: boolean;
  /** links pinned here are the attached programs */
  links: string | null;
  floor: string;
}
const CONFIGS: Config[] = [
  { id: "a", label: "a. agent absent", ops: OP_LIST, daemon: false, links: null, floor: "b" },
  {
    id: "b",
    label: "b. floor: null programs, default hooks",
    ops: OP_LIST,
    daemon: false,
    links: NULL_PINS,
    floor: "b",
  },
  {
    id: "b2",
    label: "b2. floor: null programs, + inode_permission",
    ops: ["open"],
    daemon: false,
    links: NULL_PINS,
    floor: "b2",
  },
  {
    id: "c",
    label: "c. aegisbpf run, 0 rules",
    ops: OP_LIST,
    daemon: true,
    links: `${PIN_ROOT}/links`,
    floor: "b",
  },
  {
    id: "d",
    label: "d. run, 1,000 deny_path",
    ops: OP_LIST,
    daemon: true,
    links: `${PIN_ROOT}/links`,
    floor: "b",
  },
  {
    id: "h",
    label: "h. run, 1,000 deny_path + 10,000 deny_binary_hash",
    ops: ["exec", "execcold"],
    daemon: true,
    links: `${PIN_ROOT}/links`,
    floor: "b",
  },
  {
    id: "e",
    label: "e. run, 65,536 inode + 16,384 CIDR",
    ops: OP_LIST,
    daemon: true,
    links: `${PIN_ROOT}/links`,
    floor: "b",
  },
  {
    id: "f",
    label: "f. pins only (e, daemon SIGKILLed)",
    ops: OP_LIST,
    daemon: false,
    links: `${PIN_ROOT}/links`,
    floor: "b",
  },
  {
    id: "g",
    label: "g. run --lsm-hook both, 65,536 + 16,384",
    ops: ["open"],
    daemon: true,
    links: `${PIN_ROOT}/links`,
    floor: "b2",
  },
];
const CFG = new Map(CONFIGS.map((c) => [c.id, c]));

const samples = new Map<string, Sample[]>();
const cell = (cfg: string, op: string): Sample[] => {
  const k = `${cfg}|${op}`;
  let v = samples.get(k);
  if (!v) samples.set(k, v = []);
  return v;
};
const setupTimes = new Map<string, number[]>();
const setupTime = (what: string, ms: number): void => {
  const v = setupTimes.get(what) ?? [];
  v.push(ms);
  setupTimes.set(what, v);
  out(`  ${what}: ${sec(ms)} s`);
};

/** The null program on the open path must have run: the floor is attached. */
function checkRan(cfg: Config, op: Op, s: Sample): void {
  if (op !== "open" || cfg.links === null) return;
  const prog = cfg.links === NULL_PINS ? "null_file_open" : "aegis_file_open";
  const ran = s.progs[prog]?.cnt ?? 0;
  if (BPF_STATS && ran < s.n) {
    throw new Error(`${cfg.label}: ${prog} ran ${ran} times for ${s.n} opens: not attached?`);
  }
}

/**
 * bpf_stats of the programs attached through the links pinned in `links`:
 * ops reads the floor's own pins itself (-L); the agent's link pins are
 * guarded from ops while its self-protection is armed (the default), so this
 * process (the agent's own executable, trusted) resolves each pin to its
 * program id and ops opens the programs by id (-P; program fds are not guarded).
 */
function statArgs(links: string | null): string[] {
  if (links === null) return [];
  if (links === NULL_PINS) return ["-L", links];
  const args: string[] = [];
  for (const e of [...Deno.readDirSync(links)].sort((a, b) => a.name.localeCompare(b.name))) {
    const fd = shim.getPinned(`${links}/${e.name}`);
    try {
      args.push("-P", `${e.name}:${linkProgId(fd)}`);
    } finally {
      shim.closeFd(fd);
    }
  }
  return args;
}

const libc = Deno.dlopen("libc.so.6", {
  syscall: { parameters: ["i64", "i64", "pointer", "i64"], result: "i64" },
});
const SYS_BPF = 321n; // x86_64
const BPF_OBJ_GET_INFO_BY_FD = 15n;
/** The program id of a BPF link fd: bpf(BPF_OBJ_GET_INFO_BY_FD), struct bpf_link_info. */
function linkProgId(fd: number): number {
  const info = new Uint8Array(64); // bpf_link_info: type, id, prog_id, …
  const attr = new Uint8Array(16); // info: bpf_fd, info_len, info (u64 pointer)
  const a = new DataView(attr.buffer);
  a.setUint32(0, fd, true);
  a.setUint32(4, info.byteLength, true);
  a.setBigUint64(8, BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(info))), true);
  const rc = libc.symbols.syscall(
    SYS_BPF,
    BPF_OBJ_GET_INFO_BY_FD,
    Deno.UnsafePointer.of(attr),
    16n,
  );
  if (rc < 0n) throw new Error(`bpf(BPF_OBJ_GET_INFO_BY_FD) of link fd ${fd} failed`);
  return new DataView(info.buffer).getUint32(8, true);
}

function measure(cfg: Config, ops_: (Op | "idle")[], pid: number | null): string {
  const parts: string[] = [];
  for (const op of ops_) {
    const args = [
      ...(pid !== null ? ["-p", String(pid)] : []),
      ...statArgs(cfg.links),
      ...opArgs(op),
    ];
    const s = parseOps(ops(args));
    if (op !== "idle") checkRan(cfg, op, s);
    cell(cfg.id, op).push(s);
    if (op === "idle") {
      parts.push(`idle: daemon ${s.cpu ? (s.cpu.ticks * 1000 / s.cpu.hz).toFixed(0) : "?"} ms CPU`);
    } else parts.push(`${op} ${int(s.nsPerOp)}`);
  }
  return parts.join(", ");
}

// ---- calibration (agent absent) ---------------------------------------------------------

await nothingAttached();
function calibrate(op: Op): number {
  const probe = n[op];
  ops(opArgs(op)); // warm caches
  const ns = parseOps(ops(opArgs(op))).nsPerOp;
  return Math.max(probe, Math.round((TARGET_MS * 1e6) / ns));
}
for (const op of ["open", "connect", "exec", "execcold", "fork"] as const) {
  if (OP_LIST.includes(op) || op === "open") n[op] = calibrate(op); // open: b2 and g always
}
if (OP_LIST.includes("cold")) {
  const probe = 2_000;
  ops(["mkfiles", String(probe), COLD]);
  n.cold = probe;
  ops(opArgs("cold"));
  const ns = parseOps(ops(opArgs("cold"))).nsPerOp;
  const want = Number(Deno.env.get("AEGIS_BENCH_COLD_FILES") ?? "0") ||
    Math.min(200_000, Math.max(10_000, Math.round((TARGET_MS * 1e6) / ns)));
  const t = performance.now();
  ops(["mkfiles", String(want), COLD]);
  n.cold = want;
  out(`created ${want} files for the distinct-files open in ${sec(performance.now() - t)} s`);
}
out(
  `N per measurement (~${TARGET_MS} ms with the agent absent): ` +
    OP_LIST.map((op) => `${op} ${n[op]}`).join(", "),
);

// ---- rounds --------------------------------------------------------------------------

const benchStart = performance.now();
for (let round = 1; round <= ROUNDS; round++) {
  const line = (c: Config, what: string) => out(`round ${round} ${c.label}: ${what}`);

  // a. absent
  await nothingAttached();
  line(CFG.get("a")!, measure(CFG.get("a")!, OP_LIST, null));

  // b, b2. the floor
  attachNull(FLOOR);
  line(CFG.get("b")!, measure(CFG.get("b")!, OP_LIST, null));
  attachNull(FLOOR_BOTH);
  line(CFG.get("b2")!, measure(CFG.get("b2")!, ["open"], null));
  detachNull();
  await nothingAttached();

  // c. the daemon as shipped, no policy
  seedState();
  let daemon = new Daemon([], `r${round}-c`);
  const st = await daemon.started();
  checkHooks(st.hooks, "file");
  setupTime("c: run → agent started, ENFORCE (no policy)", st.ms);
  setupTime("c: then → daemon quiet", await quiet(daemon.pid));
  control("ok", "c. no policy");
  if (round === 1) out(`  c: ${pinnedState()}`);
  line(CFG.get("c")!, measure(CFG.get("c")!, [...OP_LIST, "idle"], daemon.pid));

  // d. 1,000 deny_path through the running daemon
  setupTime("d: policy apply, 1,000 deny_path", await cli(["policy", "apply", POLICY_1K]));
  setupTime("d: then → daemon quiet", await quiet(daemon.pid));
  control("denied", "d. 1,000 rules");
  if (round === 1) out(`  d: ${pinnedState()}`);
  line(CFG.get("d")!, measure(CFG.get("d")!, [...OP_LIST, "idle"], daemon.pid));

  // h. 10,000 content rules through the running daemon: every exec is hashed
  execControl("ok", "d. no hash rules");
  setupTime(
    "h: policy apply, 1,000 deny_path + 10,000 deny_binary_hash (replacing d)",
    await cli(["policy", "apply", POLICY_HASH]),
  );
  setupTime("h: then → daemon quiet", await quiet(daemon.pid));
  control("denied", "h. hash rules");
  execControl("denied", "h. hash rules");
  if (round === 1) out(`  h: ${pinnedState()}`);
  line(
    CFG.get("h")!,
    measure(
      CFG.get("h")!,
      [...OP_LIST.filter((o) => o === "exec" || o === "execcold"), "idle"],
      daemon.pid,
    ),
  );

  // e. 65,536 + 16,384 through the running daemon
  setupTime(
    "e: policy apply, 65,536 inode + 16,384 CIDR (replacing h)",
    await cli(["policy", "apply", POLICY_65K]),
  );
  setupTime("e: then → daemon quiet", await quiet(daemon.pid));
  control("denied", "e. 65,536 rules");
  if (round === 1) out(`  e: ${pinnedState()}`);
  line(CFG.get("e")!, measure(CFG.get("e")!, [...OP_LIST, "idle"], daemon.pid));

  // f. pins only
  await daemon.stop("SIGKILL");
  control("denied", "f. pins only");
  line(CFG.get("f")!, measure(CFG.get("f")!, OP_LIST, null));
  let t = performance.now();
  uninstallPins(PIN_ROOT);
  await nothingAttached();
  setupTime("uninstall → nothing attached", performance.now() - t);

  // g. --lsm-hook both, the 65k policy at start
  seedState();
  daemon = new Daemon(["--lsm-hook", "both", "--policy", POLICY_65K], `r${round}-g`);
  const sg = await daemon.started();
  checkHooks(sg.hooks, "both");
  setupTime("g: run --lsm-hook both --policy 65,536 + 16,384 → ENFORCE", sg.ms);
  setupTime("g: then → daemon quiet", await quiet(daemon.pid));
  control("denied", "g. --lsm-hook both");
  if (round === 1) out(`  g: ${pinnedState()}`);
  line(CFG.get("g")!, measure(CFG.get("g")!, ["open", "idle"], daemon.pid));
  setupTime("g: SIGTERM → exit", await daemon.stop("SIGTERM"));
  t = performance.now();
  uninstallPins(PIN_ROOT);
  await nothingAttached();
  setupTime("uninstall → nothing attached", performance.now() - t);
  freshState();
  out(`round ${round} done at ${sec(performance.now() - benchStart)} s`);
}

// ---- report ---------------------------------------------------------------------------------

const nsOf = (cfg: string, op: string): number[] => cell(cfg, op).map((s) => s.nsPerOp);
out();
out(
  `## kernel ${Deno.osRelease()}, ${ROUNDS} rounds, clocksource ${CLOCKSOURCE}, icount ` +
    `${ICOUNT}, bpf_stats ${BPF_STATS ? "on" : "off"}`,
);
out();
out("ns per operation: median of the rounds, min..max, mean (work the daemon does every few");
out("seconds lands in some windows only: the mean counts it, the median mostly not), and the");
out("ratio of medians to a. and to the floor (b; b2 for g).");
out();
{
  const rows: string[][] = [];
  for (const op of OP_LIST) {
    const absent = median(nsOf("a", op));
    for (const c of CONFIGS) {
      if (!c.ops.includes(op)) continue;
      const v = nsOf(c.id, op);
      const m = median(v);
      rows.push([
        OP_NAMES[op],
        c.label,
        int(m),
        spread(v, int),
        int(v.reduce((a, b) => a + b, 0) / v.length),
        fix(m / absent),
        fix(m / median(nsOf(c.floor, op))),
      ]);
    }
  }
  for (
    const l of table(
      ["operation", "configuration", "ns/op median", "min..max", "mean", "× absent", "× floor"],
      rows,
      [false, false, true, true, true, true, true],
    )
  ) out(l);
}

/** Per window: mean ns per run of the programs on `hook` among `progs`. */
function hookMean(s: Sample, hook: string): number {
  let cnt = 0, ns = 0;
  for (const [p, v] of Object.entries(s.progs)) {
    if (hookOfProgram(p) !== hook) continue;
    cnt += v.cnt;
    ns += v.ns;
  }
  return cnt > 0 ? ns / cnt : NaN;
}

for (const op of ["exec", "execcold"] as const) {
  if (cell("h", op).length === 0) continue;
  // issue 16's number: exec with 10,000 content rules against none, same boot;
  // exec: the same unchanged file (the verified-file cache answers after the
  // first), execcold: changed before each exec (hashed every time)
  const h = median(nsOf("h", op)), c = median(nsOf("c", op)), d = median(nsOf("d", op));
  out();
  out(
    `${OP_NAMES[op]} with ${HASH_RULES.toLocaleString("en")} deny_binary_hash (h) against ` +
      `none: × ${fix(h / c)} of c (0 rules), × ${
        fix(h / d)
      } of d (the same 1,000 deny_path without them); ` +
      `${int(h - d)} ns more per fork+exec of a ${
        Deno.statSync(TRUE_TMP).size.toLocaleString("en")
      }-byte static binary`,
  );
}

if (BPF_STATS) {
  out();
  out("bpf_stats per program over each measurement window: runs per operation, mean run time");
  out("(run_time_ns / run_cnt deltas; median of the rounds, min..max), the ratio to the null");
  out("program(s) on the same hook in the floor for the same operation, and the program's time");
  out("per operation. Programs with fewer than 1 run per 100 operations are left out.");
  out();
  const rows: string[][] = [];
  for (const op of [...OP_LIST, "idle" as const]) {
    for (const c of CONFIGS) {
      const ss = cell(c.id, op);
      if (ss.length === 0 || c.links === null) continue;
      const progs = [...new Set(ss.flatMap((s) => Object.keys(s.progs)))].sort();
      for (const p of progs) {
        const runs = ss.map((s) => (s.progs[p]?.cnt ?? 0) / s.n);
        if (median(runs) < 0.01) continue;
        const per = ss.filter((s) => (s.progs[p]?.cnt ?? 0) > 0).map((s) =>
          s.progs[p].ns / s.progs[p].cnt
        );
        const hook = hookOfProgram(p);
        const nullMean = median(
          cell(c.floor, op).map((s) => hookMean(s, hook)).filter(Number.isFinite),
        );
        rows.push([
          OP_NAMES[op],
          c.label,
          p,
          hook,
          fix(median(runs)),
          int(median(per)),
          spread(per, int),
          fix(median(per) / nullMean),
          int(median(ss.map((s) => (s.progs[p]?.ns ?? 0) / s.n))),
        ]);
      }
    }
  }
  for (
    const l of table(
      [
        "operation",
        "configuration",
        "program",
        "hook",
        "runs/op",
        "ns/run median",
        "min..max",
        "× null",
        "ns/op in it",
      ],
      rows,
      [false, false, false, false, true, true, true, true, true],
    )
  ) out(l);

  out();
  out("All attached programs together: BPF run time per operation (median of the windows) against");
  out("the wall time the configuration adds to a. (medians).");
  out();
  const sums: string[][] = [];
  for (const op of OP_LIST) {
    const absent = median(nsOf("a", op));
    for (const c of CONFIGS) {
      const ss = cell(c.id, op);
      if (ss.length === 0 || c.links === null) continue;
      const bpf = median(ss.map((s) => Object.values(s.progs).reduce((a, v) => a + v.ns, 0) / s.n));
      const added = median(nsOf(c.id, op)) - absent;
      sums.push([OP_NAMES[op], c.label, int(bpf), int(added), added > 0 ? fix(bpf / added) : "–"]);
    }
  }
  for (
    const l of table(
      ["operation", "configuration", "BPF ns/op", "added ns/op (wall)", "BPF / added"],
      sums,
      [false, false, true, true, true],
    )
  ) out(l);
}

out();
out(
  "The daemon (c, d, h, e, g) during each window: CPU time (utime+stime, clock ticks) and share of",
);
out(
  "the window's wall time (one vCPU: every ms the daemon runs is a ms the workload waits), VmRSS",
);
out("after the window. Median of the rounds, min..max.");
out();
{
  const rows: string[][] = [];
  for (const c of CONFIGS.filter((c) => c.daemon)) {
    for (const op of [...c.ops, "idle" as const]) {
      const ss = cell(c.id, op).filter((s) => s.cpu);
      if (ss.length === 0) continue;
      const ms = ss.map((s) => s.cpu!.ticks * 1000 / s.cpu!.hz);
      const pct = ss.map((s) => 100 * (s.cpu!.ticks / s.cpu!.hz) / (s.totalNs / 1e9));
      const rss = ss.map((s) => s.cpu!.rssKb / 1024);
      rows.push([
        c.label,
        OP_NAMES[op],
        int(median(ms)),
        spread(ms, int),
        fix(median(pct), 1),
        int(median(rss)),
        spread(rss, int),
      ]);
    }
  }
  for (
    const l of table(
      [
        "configuration",
        "window",
        "daemon CPU ms",
        "min..max",
        "% of window",
        "VmRSS MiB",
        "min..max",
      ],
      rows,
      [false, false, true, true, true, true, true],
    )
  ) out(l);
}

out();
out("Setup steps (s, median and min..max over the rounds):");
out();
{
  const rows = [...setupTimes].map(([k, v]) => [k, sec(median(v)), spread(v, sec)]);
  for (const l of table(["step", "median", "min..max"], rows, [false, true, true])) out(l);
}
out();
out(`benchmark rounds took ${sec(performance.now() - benchStart)} s`);

const results = Deno.env.get("AEGIS_VM_RESULTS");
if (results) {
  Deno.writeTextFileSync(
    `${results}/enforce_bench.json`,
    JSON.stringify(
      {
        kernel: Deno.osRelease(),
        clocksource: CLOCKSOURCE,
        icount: ICOUNT,
        rounds: ROUNDS,
        targetMs: TARGET_MS,
        n,
        floor: FLOOR,
        floorBoth: FLOOR_BOTH,
        configs: CONFIGS.map((c) => ({ id: c.id, label: c.label })),
        samples: Object.fromEntries(samples),
        setup: Object.fromEntries(setupTimes),
      },
      null,
      1,
    ),
  );
}

if (BPF_STATS) Deno.writeTextFileSync(STATS_SYSCTL, statsBefore === "?" ? "0" : statsBefore);
nullObj.close();
aegisObj.close();
shim.close();
Deno.removeSync(dir, { recursive: true });
