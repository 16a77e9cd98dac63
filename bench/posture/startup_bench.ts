/**
 * Startup benchmark: wall time from `aegisbpf run` to its verdict, N runs,
 * with private paths (tests/lib/agent.ts).
 *
 *  - where BPF LSM works (VM, lsm=…,bpf): time to "agent started, ENFORCE"
 *    and to the first 200 of /health?require_enforce=1;
 *  - elsewhere (this host): time to the fail-closed exit (status 1).
 *
 * Prints min / median / max; never fails on timing.
 *
 *   deno run -A bench/posture/startup_bench.ts [runs]
 */
import { Agent, agentEnv } from "../../tests/lib/agent.ts";
import { run } from "../../tests/lib/helpers.ts";
import { AGENT } from "../../tests/lib/agent.ts";

const runs = Number(Deno.args[0] ?? 5);

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return `min ${s[0]} ms, median ${s[Math.floor(s.length / 2)]} ms, max ${
    s.at(-1)
  } ms (n=${s.length})`;
}

function say(line: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

const toStarted: number[] = [];
const toHealthy: number[] = [];
const toRefusal: number[] = [];
let verdict = "";
for (let i = 0; i < runs; i++) {
  const e = agentEnv();
  const t0 = performance.now();
  const a = new Agent([], e.env);
  try {
    await a.waitFor(() => a.err.includes("agent started") || a.exited !== null, "a verdict");
    if (a.exited !== null) {
      toRefusal.push(Math.round(performance.now() - t0));
      verdict = `fail-closed exit ${a.exited.code}`;
    } else {
      toStarted.push(Math.round(performance.now() - t0));
      verdict = /agent started, (\w+)/.exec(a.err)?.[1] ?? "?";
      for (;;) {
        const r = await fetch(`http://127.0.0.1:${e.port}/health?require_enforce=1`);
        await r.body?.cancel();
        if (r.status === 200) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      toHealthy.push(Math.round(performance.now() - t0));
    }
  } finally {
    await a.stop("SIGTERM");
    await run(AGENT, ["uninstall"], e.env);
    Deno.removeSync(e.dir, { recursive: true });
  }
}
say(`bench/posture: aegisbpf run → verdict (${verdict}), ${runs} runs`);
if (toRefusal.length) say(`  to fail-closed exit:                 ${stats(toRefusal)}`);
if (toStarted.length) say(`  to "agent started":                  ${stats(toStarted)}`);
if (toHealthy.length) say(`  to /health?require_enforce=1 → 200:  ${stats(toHealthy)}`);
