/**
 * bench/policy/unresolved_bench.ts: the cost of watching 100,000 policy
 * paths that do not exist (issue 12 target: a few MB and a few % CPU).
 *
 * Runs the UnresolvedWatcher exactly as the daemon builds it
 * (src/daemon/live.ts: only `enforce`, `onResolved` and `onError` given,
 * every other setting its default, real inotify and real path resolution)
 * on N non-existent paths in a temp directory, and prints its CPU % (of
 * one core) and RSS against a floor: the same process, holding the same
 * unresolved entries, for the same time without the watcher.
 *
 *   deno run -A bench/policy/unresolved_bench.ts [seconds=60] [paths=100000] [shape]
 *
 * shape: "flat" (every path missing in one existing directory, the
 * default), "nested" (paths below 1,000 missing directories: the nearest
 * existing parent is shared), "spread" (each path below its own missing
 * directory). With `--v8-flags=--expose-gc` the heap is collected after
 * start() (its one-time garbage: a realpath error per path), so the
 * numbers are what the watcher keeps. A benchmark: it prints, it never
 * fails on numbers.
 *
 * @module
 */
import { cpuUsage } from "node:process";
import { writeStdout } from "../../src/log.ts";
import type { Unresolved } from "../../src/policy/compile.ts";
import { UnresolvedWatcher } from "../../src/policy/watch.ts";

const seconds = Number(Deno.args[0] ?? 60);
const count = Number(Deno.args[1] ?? 100_000);
const shape = Deno.args[2] ?? "flat";
if (!(seconds > 0) || !(count > 0) || !["flat", "nested", "spread"].includes(shape)) {
  throw new Error("usage: unresolved_bench.ts [seconds>0] [paths>0] [flat|nested|spread]");
}

const dir = Deno.makeTempDirSync({ prefix: "aegis-unresolved-bench-" });
const entries: Unresolved[] = [];
for (let i = 0; i < count; i++) {
  const what = shape === "flat"
    ? `${dir}/missing-${i}`
    : shape === "nested"
    ? `${dir}/d${i % 1000}/missing-${i}`
    : `${dir}/d${i}/missing`;
  entries.push({ section: "deny_path", line: i + 3, what, reason: "does not exist (yet)" });
}

const cpuMs = () => {
  const u = cpuUsage();
  return (u.user + u.system) / 1000;
};
const mb = (b: number) => (b / 1024 / 1024).toFixed(1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** CPU % and RSS (mean, min, max) over `s` seconds, sampled each second. */
async function window(
  s: number,
): Promise<{ cpu: number; mean: number; min: number; max: number; heap: number }> {
  const c0 = cpuMs(), t0 = performance.now();
  let sum = 0, max = 0, min = Infinity, n = 0, end = 0;
  for (let i = 0; i < s; i++) {
    await sleep(1000);
    end = Deno.memoryUsage().rss;
    sum += end;
    n++;
    if (end > max) max = end;
    if (end < min) min = end;
  }
  const cpu = (100 * (cpuMs() - c0)) / (performance.now() - t0);
  (globalThis as { gc?: () => void }).gc?.(); // what is kept, not what awaits collection
  return { cpu, mean: sum / n, min, max, heap: Deno.memoryUsage().heapUsed };
}

try {
  writeStdout(
    `unresolved-path watcher: ${count} missing paths (${shape}), ${seconds} s per window\n`,
  );
  await sleep(1000);
  (globalThis as { gc?: () => void }).gc?.();
  const floor = await window(seconds);
  writeStdout(
    `floor (entries held, no watcher): CPU ${floor.cpu.toFixed(2)} %, ` +
      `RSS mean ${mb(floor.mean)} MB, max ${mb(floor.max)} MB\n`,
  );
  let resolved = 0, errors = 0;
  const t = performance.now(), c = cpuMs();
  const w = new UnresolvedWatcher(entries, {
    enforce: () => {},
    onResolved: () => resolved++,
    onError: () => errors++,
  });
  w.start();
  writeStdout(
    `start(): ${(performance.now() - t).toFixed(0)} ms wall, ${(cpuMs() - c).toFixed(0)} ms CPU; ` +
      `${w.watchedDirs.length} directories watched, ${w.pendingCount} pending\n`,
  );
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const run = await window(seconds);
  w.stop();
  writeStdout(
    `watcher: CPU ${run.cpu.toFixed(2)} % (floor ${floor.cpu.toFixed(2)} %), ` +
      `RSS mean ${mb(run.mean)} MB (+${mb(run.mean - floor.mean)} MB over the floor), ` +
      `max ${mb(run.max)} MB (+${mb(run.max - floor.max)} MB), swing (max - min) ${
        mb(run.max - run.min)
      } MB (floor ${mb(floor.max - floor.min)} MB), heap +${mb(run.heap - floor.heap)} MB${
        gc ? " (after a GC)" : ""
      }; ${resolved} resolved, ${errors} errors\n`,
  );
} finally {
  Deno.removeSync(dir, { recursive: true });
}
