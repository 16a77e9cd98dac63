/**
 * bench/drain: how fast the agent's event path consumes kernel records.
 *
 * Two runs of the same load generator, side by side in one process run:
 *   1. without the agent (its tracepoint detached): raw openat() rate;
 *   2. with the agent: tracepoint attached, filtered to the generator's
 *      tgid, ring drained in batches every 10 ms and every record decoded.
 * Prints records/s consumed, ring-buffer drops, the agent's CPU (% of one
 * core, from /proc/self/stat) and the generator's rate in both runs.
 *
 * Targets (2 vCPU machine): >= 800 k records/s, 0 drops, <= 10 % of a core.
 * A benchmark, not a test: it prints and never fails on timing.
 *
 * @module
 */
import { EventDrain } from "../../src/events/drain.ts";
import { cpuSeconds, fmt, loadgen, NOBODY, openOpensTrace, printTable, SECONDS } from "../lib.ts";

const LOADGEN = loadgen("drain_bench.ts");

/** Minimal consumer for comparison: drain batches, count frames, decode nothing. */
function rawDrain(): { stop: () => void; count: () => number; batches: () => number } {
  const buf = new Uint8Array(1 << 20);
  let records = 0;
  let batches = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    for (;;) {
      const r = ring.drain(buf);
      if (r.records === 0) break;
      records += r.records;
      batches++;
    }
    timer = setTimeout(tick, 10);
  };
  timer = setTimeout(tick, 10);
  return {
    stop: () => {
      clearTimeout(timer);
      tick();
      clearTimeout(timer);
    },
    count: () => records,
    batches: () => batches,
  };
}

using traced = await openOpensTrace();
const { trace, ring } = traced;

async function measure(rate: number, decode: boolean): Promise<[string, string][]> {
  // 1. generator alone: tracepoint emits nothing (filter matches no tgid)
  trace.setTgid(NOBODY);
  trace.setEnabled(false);
  const alone = await LOADGEN.run(rate, () => {});
  // 2. generator with the agent draining (and decoding every record)
  trace.setEnabled(true);
  let opens = 0;
  let drain: EventDrain | undefined;
  let raw: ReturnType<typeof rawDrain> | undefined;
  if (decode) {
    drain = new EventDrain(ring, (r) => {
      if (r.kind === "open" && r.path.length > 0 && r.pid > 0) opens++;
    }, { bufferBytes: 1 << 20, intervalMs: 10 });
    drain.start();
  } else {
    raw = rawDrain();
  }
  const before = trace.counters();
  let cpu0 = { user: 0, sys: 0 };
  let t0 = 0;
  const withAgent = await LOADGEN.run(rate, (pid) => {
    trace.setTgid(pid);
    t0 = performance.now();
    cpu0 = cpuSeconds();
  });
  while (ring.available() > 0) await new Promise((r) => setTimeout(r, 10));
  drain?.stop();
  raw?.stop();
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds();
  const user = cpu1.user - cpu0.user;
  const sys = cpu1.sys - cpu0.sys;
  const after = trace.counters();
  const produced = Number(after.events - before.events);
  const drops = Number(after.ringbufDrops - before.ringbufDrops);
  const consumed = decode ? opens : raw!.count();
  const label = `${rate > 0 ? `paced ${fmt(rate)}/s` : "unpaced"}, ${
    decode ? "decode" : "drain only"
  }`;
  return [
    [`[${label}] generator openat/s alone`, fmt(alone.rate)],
    [`[${label}] generator openat/s with agent`, fmt(withAgent.rate)],
    [`[${label}]   ratio with/alone`, (withAgent.rate / alone.rate).toFixed(3)],
    [`[${label}] records produced (kernel)`, fmt(produced)],
    [`[${label}] records consumed`, fmt(consumed)],
    [`[${label}] records consumed/s`, fmt(consumed / withAgent.seconds)],
    [
      `[${label}]   ratio consumed/s / generator alone`,
      (consumed / withAgent.seconds / alone.rate).toFixed(3),
    ],
    [`[${label}] ring-buffer drops`, fmt(drops)],
    [
      `[${label}] agent CPU, % of one core (user+sys)`,
      `${((user + sys) / wall * 100).toFixed(1)} (${(user / wall * 100).toFixed(1)}+${
        (sys / wall * 100).toFixed(1)
      })`,
    ],
    [
      `[${label}] agent CPU per record, ns`,
      consumed > 0 ? fmt(((user + sys) * 1e9) / consumed) : "-",
    ],
    [`[${label}] drain batches`, fmt(decode ? drain!.stats.batches : raw!.batches())],
  ];
}

/** Runs as "RATE:decode|raw" items (RATE 0 = unpaced); AEGIS_BENCH_RUNS overrides. */
const RUNS =
  (Deno.env.get("AEGIS_BENCH_RUNS") ?? "800000:decode,1000000:raw,1000000:decode,0:raw,0:decode")
    .split(",").map((r) => {
      const [rate, mode] = r.split(":");
      return { rate: Number(rate), decode: mode !== "raw" };
    });

const rows: [string, string][] = [];
for (const r of RUNS) rows.push(...await measure(r.rate, r.decode));
await printTable(
  `bench/drain (${SECONDS} s per run, ring 8 MiB, drain every 10 ms, decode = every record decoded into an object)`,
  rows,
);
