/**
 * bench/decision: what the file decision costs on real hardware (this host,
 * no VM, no BPF LSM), beside a null program on the same attach point, with
 * kernel.bpf_stats_enabled on. Each window runs `ops open` (bench/vm/ops.c)
 * pinned to one CPU; beside the wall-clock ns per open+close it prints the
 * program's mean run time (run_time_ns / run_cnt over the window, from its
 * fd's /proc/self/fdinfo).
 *
 * Two attach points, each with a null program (the floor), the decision
 * with its policy switches clear (a surface with no rules) and with 65,536
 * inode rules (none matching; AEGIS_BENCH_RULES changes the count), all interleaved in every round:
 *   fexit/vfs_open   lsm/file_open's code (bpf/lib/inode.h: hook_enter,
 *                    inode key by direct BTF loads, rule lookup) from
 *                    bench/decision/decide_fexit.bpf.c — what the shipped
 *                    hook runs, on a host that cannot attach LSM programs;
 *   tp sys_exit_openat  the fallback's program (aegis_fb_openat, the
 *                    embedded object): the same decision, but from a
 *                    tracepoint whose pointers are plain numbers, so every
 *                    field is a bpf_probe_read_kernel call.
 *
 * usage: decision_bench.ts <ops> <null_tp.bpf.o> <decide_fexit.bpf.o> [rounds] [opens]
 *
 * @module
 */
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import { AEGIS_POL_FILE_RULES, AEGIS_RT_INODE, AEGIS_RULE_DENY } from "../../src/bpf/abi_gen.ts";
import { BpfObject } from "../../src/bpf/object.ts";
import { inodeKey, policyValue, ruleValue, u32Key } from "../../src/bpf/rule_codec.ts";

const [OPS, NULL_OBJ, FEXIT_OBJ, roundsArg, opensArg] = Deno.args;
if (!OPS || !NULL_OBJ || !FEXIT_OBJ) {
  throw new Error(
    "usage: decision_bench.ts <ops> <null_tp.bpf.o> <decide_fexit.bpf.o> [rounds] [opens]",
  );
}
const ROUNDS = Number(roundsArg ?? "7");
const OPENS = Number(opensArg ?? "200000");
/** inode rules in each decision object (AEGIS_BENCH_RULES; default 65,536) */
const RULES = Number(Deno.env.get("AEGIS_BENCH_RULES") ?? "65536");
const N_RULES = RULES.toLocaleString("en-US");
const enc = new TextEncoder();
const out = (l = "") => Deno.stdout.writeSync(enc.encode(l + "\n"));

const STATS = "/proc/sys/kernel/bpf_stats_enabled";
const statsWas = Deno.readTextFileSync(STATS).trim();
Deno.writeTextFileSync(STATS, "1");

const cpus = navigator.hardwareConcurrency;
const cpu = String(Math.max(0, cpus - 1));
const model = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
out(`host ${Deno.osRelease()}, ${model}, ${cpus} CPUs; ops pinned to CPU ${cpu}`);

const dir = Deno.makeTempDirSync({ prefix: "aegis-decision-" });
const FILE = `${dir}/file`;
Deno.writeTextFileSync(FILE, "x");

/** ns per open+close of one `ops open` run, pinned. */
function opsRun(): number {
  const r = new Deno.Command("taskset", {
    args: ["-c", cpu, OPS, "open", String(OPENS), FILE],
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  if (!r.success) throw new Error(`ops failed: ${new TextDecoder().decode(r.stderr)}`);
  return Number(new TextDecoder().decode(r.stdout).trim().split(" ")[3]);
}

/** run_time_ns and run_cnt of a loaded program (its fd's fdinfo; bpf_stats on). */
function progStats(fd: number): { ns: bigint; cnt: bigint } {
  const info = Deno.readTextFileSync(`/proc/self/fdinfo/${fd}`);
  const field = (k: string) => BigInt(info.match(new RegExp(`^${k}:\\s*(\\d+)`, "m"))?.[1] ?? "0");
  return { ns: field("run_time_ns"), cnt: field("run_cnt") };
}

const shim = await openEmbeddedShim();

/** A loaded object whose rule maps hold 65,536 inode rules matching nothing here. */
function withRules(obj: BpfObject): BpfObject {
  obj.setMaxEntries("aegis_deny_inode", RULES * 2);
  obj.load();
  const inode = obj.map("aegis_deny_inode");
  const rule = ruleValue(1, AEGIS_RULE_DENY, AEGIS_RT_INODE);
  for (let i = 0; i < RULES; i++) inode.update(inodeKey(0xfff00000, BigInt(i + 1), 0), rule);
  if (inode.keys().length !== RULES) throw new Error("rules not loaded");
  return obj;
}

const fb = BpfObject.open(shim, await bpfObjectBytes());
fb.selectPrograms((p) => p === "aegis_fb_openat");
withRules(fb);
const tpNull = BpfObject.open(shim, Deno.readFileSync(NULL_OBJ), "null_tp");
tpNull.load();
// fentry/fexit need BPF trampolines, like LSM programs: a host that refuses
// those (this one without BPF LSM answers EPERM) measures the tracepoint only
let fx: BpfObject | null = null;
try {
  fx = withRules(BpfObject.open(shim, Deno.readFileSync(FEXIT_OBJ), "decide_fexit"));
} catch (e) {
  out(
    `fexit/vfs_open: not measured: this kernel refuses the program (${
      e instanceof Error ? e.message : e
    }): BPF trampolines (fentry/fexit/lsm) are not available here`,
  );
}
out(`loaded: ${RULES} inode rules in each decision object`);

interface Config {
  name: string;
  obj: BpfObject | null;
  prog: string;
  /** policy switches of the decision's object, or null for a null program */
  flags: number | null;
}
const ALL: (Config | null)[] = [
  { name: "none", obj: null, prog: "", flags: null },
  fx && { name: "fexit/vfs_open: null", obj: fx, prog: "bench_null", flags: null },
  fx && { name: "fexit/vfs_open: decision, no rules", obj: fx, prog: "bench_decide", flags: 0 },
  fx && {
    name: `fexit/vfs_open: decision, ${N_RULES} rules`,
    obj: fx,
    prog: "bench_decide",
    flags: AEGIS_POL_FILE_RULES,
  },
  { name: "tp sys_exit_openat: null", obj: tpNull, prog: "null_exit_openat", flags: null },
  { name: "tp sys_exit_openat: fallback, no rules", obj: fb, prog: "aegis_fb_openat", flags: 0 },
  {
    name: `tp sys_exit_openat: fallback, ${N_RULES} rules`,
    obj: fb,
    prog: "aegis_fb_openat",
    flags: AEGIS_POL_FILE_RULES,
  },
];
const CONFIGS = ALL.filter((c): c is Config => c !== null);
const wall = new Map<string, number[]>();
const run = new Map<string, number[]>();
const push = (m: Map<string, number[]>, c: string, v: number) => m.set(c, [...(m.get(c) ?? []), v]);

opsRun(); // warm up
for (let r = 1; r <= ROUNDS; r++) {
  const line: string[] = [];
  for (const c of CONFIGS) {
    if (c.obj && c.flags !== null) {
      c.obj.map("aegis_policy").update(u32Key(0), policyValue(c.flags));
    }
    c.obj?.attach(c.prog);
    const fd = c.obj ? c.obj.programFd(c.prog) : -1;
    const before = c.obj ? progStats(fd) : null;
    const ns = opsRun();
    if (before) {
      const after = progStats(fd);
      const cnt = after.cnt - before.cnt;
      push(run, c.name, cnt > 0n ? Number(after.ns - before.ns) / Number(cnt) : NaN);
    }
    c.obj?.detach(c.prog);
    push(wall, c.name, ns);
    line.push(ns.toFixed(0));
  }
  out(`round ${r}: ns per open+close: ${line.join(", ")}`);
}

const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const span = (v: number[], d: number) =>
  `${median(v).toFixed(d)} (${Math.min(...v).toFixed(d)}..${Math.max(...v).toFixed(d)})`;
const base = median(wall.get("none")!);
out();
out(`${ROUNDS} rounds of ${OPENS} open+close each, interleaved; medians (min..max)`);
out();
out("| configuration | ns per open+close | × none | program ns per run | × its null program |");
out("| ------------- | ----------------: | -----: | -----------------: | -----------------: |");
for (const c of CONFIGS) {
  const w = wall.get(c.name)!;
  const p = run.get(c.name);
  const floor = c.obj
    ? run.get(
      CONFIGS.find((x) =>
        x.obj !== null && x.flags === null && x.name.split(":")[0] === c.name.split(":")[0]
      )!.name,
    )
    : undefined;
  out(
    `| ${c.name} | ${span(w, 0)} | ${(median(w) / base).toFixed(3)} | ${p ? span(p, 1) : "-"} | ` +
      `${p && floor ? (median(p) / median(floor)).toFixed(2) : "-"} |`,
  );
}

fb.close();
tpNull.close();
fx?.close();
shim.close();
Deno.writeTextFileSync(STATS, statsWas);
Deno.removeSync(dir, { recursive: true });
