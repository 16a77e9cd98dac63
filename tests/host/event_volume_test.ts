/**
 * Host tier (root): the event volume controls in the real daemon
 * (docs/telemetry.md, "Event volume controls"), with the signal fallback
 * (pins on any host; each `cat` of a denied file is killed and reported).
 * `--event-sample-rate 5 --event-dedup-window 5s`: 50 cats (50 pids: the
 * pid is not in the dedup key) are 50 blocks in every counter, 10 sampled
 * in, and those 10 written as a first line and a folded count: flushed at
 * the window's end, or at the agent's stop. The test process itself never
 * opens a denied file (it would be killed).
 */
import { ok, strictEqual } from "node:assert/strict";
import { EventLine } from "../../src/events/schema.ts";
import { Agent, agentEnv, cleanupAgent, denyInPins, httpGet, type Json } from "../lib/agent.ts";

/** The block lines of rule `id`, and how many events they stand for. */
function blockLines(a: Agent, id: number): { lines: Json[]; events: number } {
  const lines = a.events().filter((e) => e.type === "block" && e.rule_id === id);
  return { lines, events: lines.reduce((n, e) => n + 1 + (e.folded ?? 0), 0) };
}

/** `n` children open `path`, one after the other; each is killed. */
async function cats(path: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const c = await new Deno.Command("/bin/cat", { args: [path], stdout: "null" }).output();
    strictEqual(c.signal, "SIGKILL");
  }
}

function metric(text: string, name: string, labels = ""): number {
  const m = new RegExp(`^${name}${labels.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : NaN;
}

Deno.test("run --event-sample-rate 5 --event-dedup-window 5s: lines thinned, counters whole, no count lost", async () => {
  const e = agentEnv();
  let agent: Agent | null = new Agent(
    [
      "--enforce-fallback=signal",
      "--event-sample-rate",
      "5",
      "--event-dedup-window",
      "5s",
    ],
    e.env,
  );
  try {
    const a = agent;
    await a.ready();
    await a.stateChanges();
    const first = `${e.dir}/first`, second = `${e.dir}/second`;
    Deno.writeTextFileSync(first, "x");
    Deno.writeTextFileSync(second, "x");
    await denyInPins(e.pinRoot, first, 7);
    await denyInPins(e.pinRoot, second, 8);
    const before = (await httpGet(e.port, "/metrics")).body as string;
    await cats(first, 50);
    // 10 of the 50 sampled in: the first written at once, the others folded and flushed
    // when the window ends
    await a.waitFor(
      () => blockLines(a, 7).events === 10,
      "10 events of rule 7 in the lines",
      15_000,
    );
    const { lines } = blockLines(a, 7);
    ok(lines.length < 10, `folded: ${lines.length} lines`);
    ok(
      lines.some((l) => l.folded > 0 && typeof l.folded_since === "string"),
      JSON.stringify(lines),
    );
    for (const l of lines) {
      strictEqual(l.sample_rate, 5);
      strictEqual(l.action, "KILL");
      ok(EventLine.safeParse(l).success, JSON.stringify(l));
    }
    const after = (await httpGet(e.port, "/metrics")).body as string;
    const blocks = metric(after, "aegisbpf_blocks_total", '{action="block"}') -
      metric(before, "aegisbpf_blocks_total", '{action="block"}');
    ok(blocks >= 50, `the kernel counted ${blocks} of the 50 opens`);
    strictEqual(metric(after, "aegisbpf_events_sampled_out_total"), 40);
    strictEqual(
      metric(after, "aegisbpf_events_folded_total"),
      lines.reduce((n, l) => n + (l.folded ?? 0), 0),
    );
    strictEqual(metric(after, "aegisbpf_events_dedup_untracked_total"), 0);

    // rule 8: stopped right after the opens; what is still folded is written before the exit
    await cats(second, 50);
    await a.event((x) => x.type === "block" && x.rule_id === 8, "the first line of rule 8");
    const st = await a.stop("SIGTERM");
    agent = null;
    strictEqual(st.code, 0, a.err);
    strictEqual(blockLines(a, 8).events, 10, JSON.stringify(blockLines(a, 8).lines));
  } finally {
    await cleanupAgent(agent, e);
  }
});
