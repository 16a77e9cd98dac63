/**
 * bench/policy/restore_bench.ts: time from `aegisbpf run` to "agent
 * started" (and, where BPF LSM enforces, to the first 200 of
 * /health?require_enforce=1) with N stored `deny_path` rules (default
 * 65,536), in the three starts an operator meets, side by side in one run:
 *
 *  - floor: nothing stored (an empty state directory, no pins);
 *  - reboot: the policy stored, no pins — the rules are compiled again
 *    (N stat() calls) and written into fresh maps before the verdict;
 *  - restart: the policy stored and the pins of the last agent (SIGKILL) —
 *    the maps are compared with the stored state entry by entry.
 *
 * Each round runs the three in turn (interleaved, so drift hits all
 * alike); it prints medians and the ratio to the floor. Outside a VM cell
 * with BPF LSM (AEGIS_VM_LSM=on) the agent runs with --enforce-fallback=signal
 * (tracepoints that kill offenders; pinned like the LSM programs), and the
 * time to a healthy /health?require_enforce=1 is not measured (that needs
 * ENFORCE).
 *
 *   deno run -A bench/policy/restore_bench.ts [rounds=3] [rules=65536]
 *
 * A benchmark: it prints, it never fails on numbers.
 *
 * @module
 */
import { AGENT, Agent, type AgentEnv, agentEnv } from "../../tests/lib/agent.ts";
import { run } from "../../tests/lib/helpers.ts";

const rounds = Number(Deno.args[0] ?? 3);
const rules = Number(Deno.args[1] ?? 65_536);
if (!(rounds > 0) || !(rules > 0)) throw new Error("usage: restore_bench.ts [rounds] [rules]");

function say(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

// enforcing where BPF LSM works: a VM cell booted with bpf in lsm= (this host
// lists bpf but refuses to load LSM programs)
const lsm = Deno.env.get("AEGIS_VM_LSM") === "on";
// elsewhere the signal fallback: it enforces (by SIGKILL) and pins, so all three rows run
const gate = lsm ? [] : ["--enforce-fallback=signal"];

/** One start: ms to "agent started" and (enforcing) to the first healthy answer. */
async function start(
  e: AgentEnv,
  kill: boolean,
): Promise<{ started: number; healthy: number | null; log: string }> {
  const t0 = performance.now();
  const a = new Agent(gate, e.env);
  try {
    await a.waitFor(
      () => a.err.includes("agent started") || a.exited !== null,
      "a verdict",
      600_000,
    );
    if (a.exited) throw new Error(`the agent exited:\n${a.err}`);
    const started = Math.round(performance.now() - t0);
    let healthy: number | null = null;
    if (lsm) {
      for (;;) {
        const r = await fetch(`http://127.0.0.1:${e.port}/health?require_enforce=1`);
        await r.body?.cancel();
        if (r.status === 200) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      healthy = Math.round(performance.now() - t0);
    }
    return { started, healthy, log: a.err };
  } finally {
    await a.stop(kill ? "SIGKILL" : "SIGTERM");
  }
}

const uninstall = async (e: AgentEnv) => {
  const r = await run(AGENT, ["uninstall"], e.env);
  if (r.code !== 0) throw new Error(`uninstall: ${r.stderr}`);
};

// the files and the policy, once
const files = Deno.makeTempDirSync({ prefix: "aegis-restore-bench-" });
const lines = ["version=1", "[deny_path]"];
for (let i = 0; i < rules; i++) {
  Deno.writeTextFileSync(`${files}/f${i}`, "");
  lines.push(`${files}/f${i}`);
}
Deno.writeTextFileSync(`${files}/policy.conf`, lines.join("\n") + "\n");

// a state directory holding the policy: applied through a running agent
// (a first apply that finds the maps too small records the size it needs;
// the next start creates them that large)
const stored = agentEnv();
for (let attempt = 0;; attempt++) {
  const a = new Agent(gate, stored.env);
  await a.waitFor(() => a.err.includes("agent started") || a.exited !== null, "a verdict", 600_000);
  if (a.exited) throw new Error(`the agent exited:\n${a.err}`);
  const r = await run(AGENT, ["policy", "apply", `${files}/policy.conf`], stored.env);
  await a.stop("SIGTERM");
  await uninstall(stored);
  if (r.code === 0) break;
  if (attempt > 0 || !/map full/i.test(r.stderr + r.stdout)) {
    throw new Error(`policy apply: ${r.stderr}${r.stdout}`);
  }
}
const empty = agentEnv();

const rows: Record<string, { started: number[]; healthy: number[] }> = {
  floor: { started: [], healthy: [] },
  reboot: { started: [], healthy: [] },
  restart: { started: [], healthy: [] },
};
const add = (row: string, r: { started: number; healthy: number | null }) => {
  rows[row].started.push(r.started);
  if (r.healthy !== null) rows[row].healthy.push(r.healthy);
};
let restoreLine = "";
try {
  for (let i = 0; i < rounds; i++) {
    add("floor", await start(empty, false));
    await uninstall(empty);
    const boot = await start(stored, true); // SIGKILL: its pins stay for the restart row
    restoreLine = /"message":"(restored the applied policy[^"]*)"/.exec(boot.log)?.[1] ??
      restoreLine;
    add("reboot", boot);
    add("restart", await start(stored, false));
    await uninstall(stored);
  }
} finally {
  for (const e of [stored, empty]) {
    await run(AGENT, ["uninstall"], e.env);
    Deno.removeSync(e.dir, { recursive: true });
  }
  Deno.removeSync(files, { recursive: true });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
say(
  `bench/policy/restore: ${rules} deny_path rules, ${rounds} round(s), ${
    lsm ? "BPF LSM enforcing" : "no BPF LSM: --enforce-fallback=signal"
  }`,
);
if (restoreLine) say(`  ${restoreLine}`);
const floor = median(rows.floor.started);
for (const [name, r] of Object.entries(rows)) {
  if (r.started.length === 0) continue;
  const m = median(r.started);
  say(
    `  ${name.padEnd(8)} run → agent started: median ${m} ms (x${
      (m / floor).toFixed(2)
    } of the floor)` +
      (r.healthy.length
        ? `, → /health?require_enforce=1 200: median ${median(r.healthy)} ms`
        : "") +
      `  [${r.started.join(", ")}]`,
  );
}
