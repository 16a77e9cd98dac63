/**
 * process_* metrics: parsed from /proc fixtures (a command name with spaces
 * and parentheses, unreadable files, an unlimited fd limit). The real
 * /proc/self of the agent: tests/host/promtool_test.ts (Deno reads /proc
 * only with --allow-all, which the unit tier does not have).
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { readProcessStats, statFields, USER_HZ, withoutProcessMetrics } from "./process.ts";
import { LIMITS, procFixture, statLine, TYPICAL } from "./process_testing.ts";

Deno.test("readProcessStats: the procfs collector's numbers from /proc fixtures", async () => {
  const fx = procFixture(TYPICAL, 5);
  try {
    deepStrictEqual(readProcessStats(fx), {
      cpuSeconds: 3,
      residentBytes: 117212 * 1024,
      virtualBytes: 987654321,
      startTimeSeconds: 1796000000 + 123456 / USER_HZ,
      openFds: 5,
      maxFds: 20000,
    });
  } finally {
    await Deno.remove(fx.root, { recursive: true });
  }
});

Deno.test("readProcessStats: what cannot be read or parsed is left out, never made up", async () => {
  const fx = procFixture({
    "self/stat": "4242 (no closing paren 1 2 3\n",
    "self/limits": LIMITS.replace("20000 ", "unlimited"),
  }, 0);
  try {
    Deno.removeSync(`${fx.self}/fd`);
    const none = readProcessStats(fx);
    deepStrictEqual(Object.entries(none).filter(([, v]) => v !== null), []);
    strictEqual(Object.keys(none).length, 6);
    // stat readable, /proc/stat (btime) not: everything but the start time
    Deno.writeTextFileSync(`${fx.self}/stat`, statLine("a", { 14: 1, 15: 1, 22: 5, 23: 4096 }));
    const p = readProcessStats(fx);
    strictEqual(p.cpuSeconds, 0.02);
    strictEqual(p.virtualBytes, 4096);
    strictEqual(p.startTimeSeconds, null);
  } finally {
    await Deno.remove(fx.root, { recursive: true });
  }
  strictEqual(statFields("1 (x) S 1 2"), null, "too few fields");
  strictEqual(statFields("1 (a) b) S " + "0 ".repeat(30))?.[0], "S", "the last ) ends the name");
});

Deno.test("withoutProcessMetrics: drops the process_* families only", () => {
  const text = [
    "# HELP aegisbpf_build_info x",
    "# TYPE aegisbpf_build_info gauge",
    'aegisbpf_build_info{version="1"} 1',
    "# HELP process_open_fds Number of open file descriptors.",
    "# TYPE process_open_fds gauge",
    "process_open_fds 12",
    "# HELP aegisbpf_process_like_total y",
    "# TYPE aegisbpf_process_like_total counter",
    "aegisbpf_process_like_total 3",
    "# HELP process_cpu_seconds_total z",
    "# TYPE process_cpu_seconds_total counter",
    "process_cpu_seconds_total 0.5",
    "",
  ].join("\n");
  strictEqual(
    withoutProcessMetrics(text),
    [
      "# HELP aegisbpf_build_info x",
      "# TYPE aegisbpf_build_info gauge",
      'aegisbpf_build_info{version="1"} 1',
      "# HELP aegisbpf_process_like_total y",
      "# TYPE aegisbpf_process_like_total counter",
      "aegisbpf_process_like_total 3",
      "",
    ].join("\n"),
  );
});
