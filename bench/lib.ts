/**
 * Shared parts of the event-path benchmarks (bench/drain, bench/events):
 * the load generator protocol (bench/drain/loadgen.c), the openat
 * tracepoint with its ring buffer, this process's CPU time and the printed
 * table.
 *
 * @module
 */
import { bpfObjectBytes, openEmbeddedShim } from "../src/assets/mod.ts";
import { TraceSet } from "../src/bpf/trace.ts";
import type { NativeRing, Shim } from "../src/native/shim.ts";

/** Seconds per load generator run (AEGIS_BENCH_SECONDS, default 5). */
export const SECONDS = Number(Deno.env.get("AEGIS_BENCH_SECONDS") ?? "5");

/** The tgid filter value that matches no process. */
export const NOBODY = -1 >>> 0;

export interface GenResult {
  calls: number;
  seconds: number;
  rate: number;
}

/** The load generator (bench/drain/loadgen.c) named as the script's first argument. */
export interface Loadgen {
  /**
   * One run: the generator prints "ready PID", `onReady(PID)` is called,
   * then "go" starts `SECONDS` of openat() calls (paced at `rate`/s, 0 = as
   * fast as it goes) and it reports calls, seconds and rate.
   */
  run(rate: number, onReady: (pid: number) => void): Promise<GenResult>;
}

/** The load generator from the first argument, or a usage error naming `script`. */
export function loadgen(script: string): Loadgen {
  const path = Deno.args[0];
  if (!path) throw new Error(`usage: ${script} <loadgen binary>`);
  return { run: (rate, onReady) => runGenerator(path, rate, onReady) };
}

async function runGenerator(
  path: string,
  rate: number,
  onReady: (pid: number) => void,
): Promise<GenResult> {
  const p = new Deno.Command(path, {
    args: [String(SECONDS), String(rate)],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const lines = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await lines.read();
    if (done) throw new Error("load generator exited early");
    text += value;
  }
  onReady(Number(/ready (\d+)/.exec(text)![1]));
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode("go\n"));
  await w.close();
  while (!/rate \d+/.test(text)) {
    const { value, done } = await lines.read();
    if (done) break;
    text += value;
  }
  await p.status;
  const m = /calls (\d+) seconds ([\d.]+) rate (\d+)/.exec(text);
  if (!m) throw new Error(`load generator output: ${text}`);
  return { calls: Number(m[1]), seconds: Number(m[2]), rate: Number(m[3]) };
}

/** CPU seconds (user, system) used by this process so far, from /proc/self/stat. */
export function cpuSeconds(): { user: number; sys: number } {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime, stime (fields 14, 15), in USER_HZ = 100 ticks per second
  return { user: Number(f[11]) / 100, sys: Number(f[12]) / 100 };
}

/** A whole number with thousands separators. */
export const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");

/** The openat tracepoint (filtered to nobody yet), its 8 MiB ring buffer and the shim. */
export interface OpensTrace extends Disposable {
  shim: Shim;
  trace: TraceSet;
  ring: NativeRing;
}

/** Load the openat tracepoint and open its ring buffer; dispose closes all three. */
export async function openOpensTrace(): Promise<OpensTrace> {
  using stack = new DisposableStack();
  const shim = stack.use(await openEmbeddedShim());
  const trace = stack.use(TraceSet.load(shim, await bpfObjectBytes(), {
    opens: true,
    tgid: NOBODY, // nobody until the generator is ready
    ringBytes: 8 << 20,
  }));
  const ring = stack.use(shim.openRing(trace.eventsFd()));
  const owned = stack.move();
  return { shim, trace, ring, [Symbol.dispose]: () => owned.dispose() };
}

/** Print `title` and the rows as an aligned two-column table on stdout. */
export async function printTable(title: string, rows: [string, string][]): Promise<void> {
  const w = Math.max(...rows.map((r) => r[0].length));
  const lines = rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`);
  await Deno.stdout.write(new TextEncoder().encode(`${title}\n${lines.join("\n")}\n`));
}
