/**
 * bench/events: sustained JSON events/s through the whole user-space event
 * path, from the kernel ring buffer to a file:
 *
 *   loadgen openat() → tracepoint → ring buffer (8 MiB) → EventDrain
 *   (batch drain every 10 ms, decode; paused while the sink is saturated,
 *   so overload is counted as ring drops) → recordToEvent (with the cgroup
 *   path resolver) → JSON.stringify → file sink (buffered, 64 MiB × 5
 *   rotation) on disk.
 *
 * Runs paced at 10 k, 100 k, 200 k and 300 k/s, then unpaced (as fast as the generator
 * goes). Prints events written/s, kernel ring drops, sink drops, the
 * agent's CPU (% of one core) and RSS. Also times one metrics render with
 * a full 65,536-entry deny_inode map (the per-scrape key count).
 *
 *   deno run -A bench/events/events_bench.ts dist/bench/loadgen
 *
 * Target (2 vCPU machine): >= 200 k events/s with 0 drops. A benchmark,
 * not a test: it prints and never fails on timing.
 *
 * @module
 */
import { CgroupPathResolver } from "../../src/events/cgroup_path.ts";
import { EventDrain } from "../../src/events/drain.ts";
import { eventJson } from "../../src/events/envelope.ts";
import { recordToEvent } from "../../src/events/json.ts";
import { openSink } from "../../src/events/sink.ts";
import { kernelOnlySources, renderMetrics } from "../../src/metrics/render.ts";
import { ABI_LAYOUT, type MapName } from "../../src/bpf/abi_gen.ts";
import { cpuSeconds, fmt, loadgen, NOBODY, openOpensTrace, printTable, SECONDS } from "../lib.ts";

const LOADGEN = loadgen("events_bench.ts");
const OUT_DIR = Deno.env.get("AEGIS_BENCH_OUT") ??
  new URL("../../dist/bench", import.meta.url).pathname;

/** CPU seconds (user + system) used by this process so far. */
function cpuTotal(): number {
  const c = cpuSeconds();
  return c.user + c.sys;
}

function rssMiB(field = "VmRSS"): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
    Deno.readTextFileSync("/proc/self/status"),
  );
  return m ? Number(m[1]) / 1024 : NaN;
}

using traced = await openOpensTrace();
const { trace, ring } = traced;
Deno.mkdirSync(OUT_DIR, { recursive: true });
const dir = Deno.makeTempDirSync({ dir: OUT_DIR, prefix: "events-" });
const cgroups = new CgroupPathResolver();

async function measure(rate: number): Promise<[string, string][]> {
  const sink = openSink(`file:${dir}/events-${rate}.jsonl`);
  trace.setTgid(NOBODY);
  const drain = new EventDrain(
    ring,
    (r) => sink.write(eventJson(recordToEvent(r, cgroups))),
    { bufferBytes: 1 << 20, intervalMs: 10, maxBatchesPerTick: 1 },
  );
  drain.drainNow();
  // The agent's drain loop: every 10 ms, take batches while the sink keeps
  // up; while it is saturated, records wait in the kernel ring.
  let stop = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    for (let i = 0; i < 64 && !sink.saturated; i++) {
      if (drain.drainNow() === 0) break;
    }
    if (!stop) timer = setTimeout(tick, 10);
  };
  const sinkBefore = { ...sink.stats };
  const before = trace.counters();
  tick();
  let cpu0 = 0;
  let t0 = 0;
  const { calls } = await LOADGEN.run(rate, (pid) => {
    trace.setTgid(pid);
    t0 = performance.now();
    cpu0 = cpuTotal();
  });
  while (ring.available() > 0) await new Promise((r) => setTimeout(r, 10));
  stop = true;
  clearTimeout(timer);
  drain.drainNow();
  await sink.flush();
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuTotal() - cpu0;
  const after = trace.counters();
  const rss = rssMiB();
  await sink.close();
  const written = sink.stats.written - sinkBefore.written;
  const label = rate > 0 ? `paced ${fmt(rate)}/s` : "unpaced";
  return [
    [`[${label}] generator openat() calls`, fmt(calls)],
    [`[${label}] records produced (kernel)`, fmt(Number(after.events - before.events))],
    [`[${label}] JSON events written`, fmt(written)],
    [`[${label}] JSON events written/s`, fmt(written / wall)],
    [`[${label}] MiB written/s`, (sink.stats.bytes / wall / 2 ** 20).toFixed(1)],
    [
      `[${label}] ring-buffer drops (kernel)`,
      fmt(Number(after.ringbufDrops - before.ringbufDrops)),
    ],
    [`[${label}] sink drops`, fmt(sink.stats.dropped - sinkBefore.dropped)],
    [`[${label}] sink rotations`, fmt(sink.stats.rotations)],
    [`[${label}] agent CPU, % of one core`, (cpu / wall * 100).toFixed(1)],
    [`[${label}] agent CPU per event, ns`, written ? fmt(cpu * 1e9 / written) : "-"],
    [`[${label}] agent RSS, MiB`, rss.toFixed(1)],
  ];
}

/** One metrics render with aegis_deny_inode full (65,536 keys counted). */
async function metricsScrape(): Promise<[string, string][]> {
  const m = trace.obj.map("aegis_deny_inode");
  const K = ABI_LAYOUT.structs.aegis_inode_key;
  const value = new Uint8Array(m.valueBytes);
  const t0 = performance.now();
  let filled = 0;
  for (let i = 0; i < m.maxEntries; i++) {
    const k = new Uint8Array(K.size);
    new DataView(k.buffer).setBigUint64(K.fields.ino.offset, BigInt(i + 1), true);
    m.update(k, value);
    filled++;
  }
  const fillMs = performance.now() - t0;
  const map = (n: MapName) => {
    try {
      return trace.obj.map(n);
    } catch {
      return null;
    }
  };
  const src = kernelOnlySources(map, `${dir}/no-slo.json`);
  await renderMetrics(src, { detailed: false }); // warm
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    await renderMetrics(src, { detailed: false });
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return [
    [`[metrics] deny_inode entries`, fmt(filled)],
    [`[metrics] fill time, ms`, fillMs.toFixed(0)],
    [`[metrics] render with full deny_inode, median ms`, times[2].toFixed(1)],
  ];
}

const RATES = (Deno.env.get("AEGIS_BENCH_RATES") ?? "10000,100000,200000,300000,0").split(",").map(
  Number,
);
const rows: [string, string][] = [];
try {
  for (const r of RATES) rows.push(...await measure(r));
  rows.push(...await metricsScrape());
} finally {
  Deno.removeSync(dir, { recursive: true });
}
await printTable(
  `bench/events (${SECONDS} s per run; ring 8 MiB; drain every 10 ms; JSON to a file sink, 64 MiB x 5 rotation)`,
  rows,
);
