/**
 * Cost of one enforcement-proof round (src/proof/): wall time and CPU time
 * (this process and its waited-for children, from /proc/self/stat) of
 *
 *  - floor: the same probe process (/bin/sh, released over its stdin,
 *    opening the same file) with no cgroup move and no rule bookkeeping;
 *  - round: what the daemon does per round for the file surface — check the
 *    sentinel, re-assert the canary rule in the live generation (in-memory
 *    maps here), move the probe into the canary cgroup, judge its answer;
 *  - the exec round likewise;
 *  - the forked probes of ffi/aegis_probe.c: the network canary's connect,
 *    and rule verification of 64 files (the per-round limit) against its
 *    floor, the same fork with no path (cgroup move and exit only).
 *
 * On a host whose BPF LSM does not deny, the probe's open succeeds in both
 * (the kernel's deny itself is a hash lookup, nanoseconds against the
 * milliseconds of a process spawn). Needs root (the cgroup move). Never
 * fails on timing.
 *
 *   deno run -A bench/posture/proof_bench.ts [rounds, default 100]
 */
import { cgroup2PathFrom } from "../../src/bpf/self_cgroup.ts";
import { cgroup2MountFrom } from "../../src/util/mountinfo.ts";
import {
  CANARY_CGROUP_NAME,
  CANARY_NET_ADDR,
  CANARY_NET_PORT,
  canaryCgroup,
  ensureExecSentinel,
  ensureInGeneration,
  ensureSentinel,
  EXEC_CANARY_FLAGS,
  execCanaryEntry,
  FILE_CANARY_FLAGS,
  fileCanaryEntry,
  probeExec,
  probeOpen,
} from "../../src/proof/canary.ts";
import { fakeMaps } from "../../src/policy/fake_maps_testing.ts";
import { openEmbeddedShim } from "../../src/assets/mod.ts";
import { probeConnect, probeOpenPaths } from "../../src/native/probe.ts";
import { DEFAULT_VERIFY_LIMIT, VERIFY_TIMEOUT_MS } from "../../src/proof/verify.ts";

const rounds = Number(Deno.args[0] ?? 100);
const TICK_MS = 10; // USER_HZ = 100

function say(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

/** utime + stime + cutime + cstime of this process, in ms. */
function cpuMs(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields 14..17 of proc(5), counted from field 3 (state) at index 0
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS;
}

/** Where canaryCgroup() would put it, without creating it. */
/** The cgroup this bench runs in: where the agent would put its canary cgroup. */
function benchCgroup(): string {
  const root = cgroup2MountFrom(Deno.readTextFileSync("/proc/self/mountinfo"));
  const here = cgroup2PathFrom(Deno.readTextFileSync("/proc/self/cgroup"));
  return here === "/" || here === null ? `${root}` : `${root}${here}`;
}

async function floorProbe(path: string): Promise<void> {
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", 'read -r _ || exit 97; : <"$1"', "aegisbpf-proof", path],
    stdin: "piped",
    stdout: "null",
    stderr: "piped",
    clearEnv: true,
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode("go\n"));
  await w.close();
  await child.output();
}

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return `median ${s[Math.floor(s.length / 2)].toFixed(2)} ms, mean ${mean.toFixed(2)} ms, ` +
    `p95 ${s[Math.floor(s.length * 0.95)].toFixed(2)} ms`;
}

const dir = Deno.makeTempDirSync({ prefix: "aegis-proof-bench-" });
let existed = true;
try {
  Deno.statSync(`${benchCgroup()}/${CANARY_CGROUP_NAME}`);
} catch {
  existed = false;
}
const cg = canaryCgroup(benchCgroup()).path;
try {
  const sentinel = ensureSentinel(`${dir}/proof`);
  const maps = fakeMaps();
  const m = { map: (n: string) => maps.get(n) };
  const measure = async (what: () => Promise<unknown>) => {
    for (let i = 0; i < 5; i++) await what(); // warm-up
    const walls: number[] = [];
    const c0 = cpuMs();
    for (let i = 0; i < rounds; i++) {
      const t = performance.now();
      await what();
      walls.push(performance.now() - t);
    }
    return { walls, cpu: (cpuMs() - c0) / rounds };
  };
  const floor = await measure(() => floorProbe(sentinel.path));
  const round = await measure(async () => {
    const s = ensureSentinel(`${dir}/proof`);
    ensureInGeneration(m, 0, fileCanaryEntry(s), FILE_CANARY_FLAGS);
    return await probeOpen(s.path, cg);
  });
  say(`proof round, file surface (${rounds} rounds each):`);
  say(
    `  floor (spawn the probe, no rule work):  wall ${stats(floor.walls)}; ` +
      `CPU ${floor.cpu.toFixed(2)} ms/round (agent + probe)`,
  );
  say(
    `  round (sentinel + canary + cgroup move + probe): wall ${stats(round.walls)}; ` +
      `CPU ${round.cpu.toFixed(2)} ms/round`,
  );
  const mf = [...floor.walls].sort((a, b) => a - b)[Math.floor(rounds / 2)];
  const mr = [...round.walls].sort((a, b) => a - b)[Math.floor(rounds / 2)];
  say(
    `  round / floor (median wall): ${(mr / mf).toFixed(2)}x; at the default 30 s period ` +
      `that is ${(round.cpu / 30_000 * 100).toFixed(4)} % of one CPU`,
  );
  // the exec surface; where the kernel does not deny (this host) the script runs (sh, exit 0)
  const execRound = await measure(async () => {
    const x = ensureExecSentinel(`${dir}/state`);
    ensureInGeneration(m, 0, execCanaryEntry(), EXEC_CANARY_FLAGS);
    return await probeExec(x.path, cg);
  });
  say(
    `  exec round (sentinel + canary + cgroup move + exec probe): wall ` +
      `${stats(execRound.walls)}; CPU ${execRound.cpu.toFixed(2)} ms/round`,
  );
  // the forked probes (ffi/aegis_probe.c): a fork of this process, no exec
  using shim = await openEmbeddedShim(`${dir}/rt`);
  const procs = `${cg}/cgroup.procs`;
  const files = Array.from({ length: DEFAULT_VERIFY_LIMIT }, (_, i) => `${dir}/rule-${i}`);
  for (const f of files) Deno.writeTextFileSync(f, "x");
  const forkFloor = await measure(() => probeOpenPaths(shim, procs, [], VERIFY_TIMEOUT_MS));
  const verify = await measure(() => probeOpenPaths(shim, procs, files, VERIFY_TIMEOUT_MS));
  const net = await measure(() =>
    probeConnect(shim, procs, CANARY_NET_ADDR, CANARY_NET_PORT, VERIFY_TIMEOUT_MS)
  );
  say(
    `  fork floor (fork, cgroup move, exit): wall ${stats(forkFloor.walls)}; ` +
      `CPU ${forkFloor.cpu.toFixed(2)} ms/round`,
  );
  say(
    `  network round (fork + connect): wall ${stats(net.walls)}; CPU ${
      net.cpu.toFixed(2)
    } ms/round`,
  );
  say(
    `  rule verification, ${files.length} files (fork + O_PATH + reopen each): wall ` +
      `${stats(verify.walls)}; CPU ${verify.cpu.toFixed(2)} ms/round`,
  );
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  say(
    `  verification / fork floor (median wall): ${
      (med(verify.walls) / med(forkFloor.walls)).toFixed(2)
    }x; the sh probe floor / fork floor: ${(med(floor.walls) / med(forkFloor.walls)).toFixed(2)}x`,
  );
} finally {
  Deno.removeSync(dir, { recursive: true });
  if (!existed) Deno.removeSync(cg); // ours, and empty once the probes are gone
}
