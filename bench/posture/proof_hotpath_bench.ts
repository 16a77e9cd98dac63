/**
 * What the enforcement proof's canaries cost every workload (run inside a
 * VM guest with BPF LSM on). The canaries switch on the file and exec rule
 * lookups of their generation (AEGIS_POL_FILE_RULES | AEGIS_POL_EXEC_RULES)
 * even on a node with no rule of its own: every open then does one
 * deny_inode lookup, every exec a deny_inode and a deny_comm lookup (and
 * the basename scan). Two configurations, side by side in one boot, every
 * lsm/ program attached:
 *   1. no rules: policy flags 0 (the hooks return at once);
 *   2. canaries only: flags FILE|EXEC, one deny_inode entry and one
 *      deny_comm entry (src/proof/canary.ts), none matching the benchmark.
 * Three rounds alternating; median ns/op and the ratio. Never fails on timing.
 *
 *   bash scripts/vm/run.sh --kernel 6.12 --lsm on -- deno run -A --no-check \
 *     bench/posture/proof_hotpath_bench.ts dist/bench/ops dist/bench/true-static
 * (the two binaries as bench/vm/run.sh builds them)
 *
 * @module
 */
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import { BpfObject } from "../../src/bpf/object.ts";
import { policyValue, u32Key } from "../../src/bpf/rule_codec.ts";
import {
  EXEC_CANARY_FLAGS,
  execCanaryEntry,
  FILE_CANARY_FLAGS,
  fileCanaryEntry,
} from "../../src/proof/canary.ts";

const [OPS, TRUE_STATIC] = Deno.args;
if (!OPS || !TRUE_STATIC) throw new Error("usage: proof_hotpath_bench.ts <ops> <static true>");
const TARGET_MS = Number(Deno.env.get("AEGIS_BENCH_TARGET_MS") ?? "1000");
const ROUNDS = Number(Deno.env.get("AEGIS_BENCH_ROUNDS") ?? "3");

function out(line = ""): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-hotpath-" });
const FILE = `${dir}/file`;
Deno.writeTextFileSync(FILE, "benchmark");
const TRUE_TMP = `${dir}/true`;
Deno.copyFileSync(TRUE_STATIC, TRUE_TMP);
Deno.chmodSync(TRUE_TMP, 0o755);

type Op = "open" | "exec";
function runOps(op: Op, n: number): number {
  const args = op === "open" ? ["open", String(n), FILE] : ["exec", String(n), TRUE_TMP];
  const r = new Deno.Command(OPS, { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!r.success) throw new Error(`ops ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`);
  const ns = Number(new TextDecoder().decode(r.stdout).trim().split(" ")[3]);
  if (!Number.isFinite(ns)) throw new Error("ops printed no ns/op");
  return ns;
}
function calibrate(op: Op): number {
  const probe = op === "open" ? 2_000 : 10;
  runOps(op, probe);
  return Math.max(probe, Math.round(TARGET_MS * 1e6 / runOps(op, probe)));
}

const shim = await openEmbeddedShim();
const obj = BpfObject.open(shim, await bpfObjectBytes());
obj.selectPrograms((_p, s) => s.startsWith("lsm/"));
obj.load();
const att = obj.attachAll();
const failed = att.filter((r) => r.status === "failed");
if (failed.length > 0) throw new Error(`attach failed: ${failed.map((f) => f.section)}`);
const policy = obj.map("aegis_policy");
const fileEntry = fileCanaryEntry({ path: "/nonexistent", dev: 0xfffff, ino: 0xfffffffffn });
const execEntry = execCanaryEntry();

function configure(canaries: boolean): void {
  if (canaries) {
    obj.map(fileEntry.map).update(fileEntry.key(0), fileEntry.value);
    obj.map(execEntry.map).update(execEntry.key(0), execEntry.value);
  } else {
    obj.map(fileEntry.map).delete(fileEntry.key(0));
    obj.map(execEntry.map).delete(execEntry.key(0));
  }
  policy.update(u32Key(0), policyValue(canaries ? FILE_CANARY_FLAGS | EXEC_CANARY_FLAGS : 0));
}

const n = { open: calibrate("open"), exec: calibrate("exec") };
const results: Record<string, Record<Op, number[]>> = {
  "no rules": { open: [], exec: [] },
  "canaries only": { open: [], exec: [] },
};
for (let r = 0; r < ROUNDS; r++) {
  for (const cfg of ["no rules", "canaries only"]) {
    configure(cfg === "canaries only");
    for (const op of ["open", "exec"] as Op[]) results[cfg][op].push(runOps(op, n[op]));
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
out(
  `proof hot path (${Deno.env.get("AEGIS_VM_KERNEL_RELEASE") ?? "this kernel"}), ` +
    `median of ${ROUNDS} rounds, ns/op:`,
);
for (const op of ["open", "exec"] as Op[]) {
  const a = median(results["no rules"][op]);
  const b = median(results["canaries only"][op]);
  out(
    `  ${op === "open" ? "open+close" : "fork+exec static true"}: no rules ${a.toFixed(0)}, ` +
      `canaries only ${b.toFixed(0)} (${(b / a).toFixed(3)}x, ${(b - a).toFixed(0)} ns)`,
  );
}
obj.close();
shim.close();
Deno.removeSync(dir, { recursive: true });
