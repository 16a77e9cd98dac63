/**
 * Host tier (root): `promtool check metrics` finds nothing in the agent's
 * metrics (docs/telemetry.md, "Metric names"). promtool comes from Debian's
 * `prometheus` package (build/apt-packages.txt; scripts/setup.sh installs
 * it, so CI runs this); without it every test here is skipped, the reason in
 * its name.
 *  - the check itself: a known-bad exposition is reported (a failing lint
 *    fails the test, never passes unnoticed);
 *  - every family at once: a render from a real kernel object with every
 *    source present, `--detailed`; every documented metric is there and
 *    every rendered one is documented;
 *  - `aegisbpf metrics` from the pins (no daemon);
 *  - the real daemon in audit mode with a deny rule: GET /metrics plain and
 *    `?detailed=1`; the denied opens counted by default as
 *    aegisbpf_blocks_total{action="audit"}; the process_* metrics describe
 *    the daemon; `aegisbpf metrics` through the control socket without them.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { uninstallPins } from "../../src/bpf/engine.ts";
import type { FallbackSet } from "../../src/bpf/fallback.ts";
import { renderFromPins } from "../../src/cli/metrics.ts";
import { PROC_SELF } from "../../src/metrics/process.ts";
import { agentBuildInfo, NetBlockCounter, renderMetrics } from "../../src/metrics/render.ts";
import { AGENT, Agent, agentEnv, cleanupAgent, httpGet } from "../lib/agent.ts";
import { ROOT, run } from "../lib/helpers.ts";
import { mapsOf, openMany, sample, withDeniedFile } from "../lib/telemetry.ts";

/** promtool's path, or null when it is not installed. */
function findPromtool(): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/bin"])) {
    try {
      if (Deno.statSync(`${dir}/promtool`).isFile) return `${dir}/promtool`;
    } catch { /* not here */ }
  }
  return null;
}

const PROMTOOL = findPromtool();
const SKIP = PROMTOOL ? "" : " (SKIPPED: no promtool on PATH; apt-get install prometheus, " +
  "or run scripts/setup.sh, which installs it)";
if (!PROMTOOL) {
  Deno.stderr.writeSync(new TextEncoder().encode(`promtool_test: skipped:${SKIP}\n`));
}

/** `promtool check metrics` over `text`: its exit code and everything it printed. */
async function promtool(text: string): Promise<{ code: number; output: string }> {
  const r = await run(PROMTOOL!, ["check", "metrics"], undefined, text);
  return { code: r.code, output: (r.stdout + r.stderr).trim() };
}

/** Fails, quoting promtool and the text, unless promtool finds nothing at all. */
async function assertClean(what: string, text: string): Promise<void> {
  ok(text.length > 0, `${what}: empty exposition`);
  const r = await promtool(text);
  if (r.code !== 0 || r.output !== "") {
    throw new Error(
      `promtool check metrics on ${what}: exit ${r.code}\n${r.output}\n--- the text:\n${text}`,
    );
  }
}

/** Family names (# TYPE lines). */
function families(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
}

/** The metric names docs/telemetry.md lists under "## Metrics" (the rename table excepted). */
function documentedMetrics(): Set<string> {
  const doc = Deno.readTextFileSync(`${ROOT}/docs/telemetry.md`);
  const start = doc.indexOf("\n## Metrics\n");
  const end = doc.indexOf("\n### Metric names", start);
  ok(start > 0 && end > start, "docs/telemetry.md: the Metrics section and its rename table");
  return new Set(
    [...doc.slice(start, end).matchAll(/`((?:aegisbpf|process)_[a-z_]+)/g)].map((m) => m[1])
      .filter((n) => !n.endsWith("_")), // `process_*`
  );
}

const RUNTIME = await Deno.makeTempDir({ prefix: "aegis-prom-rt-" });
globalThis.addEventListener("unload", () => Deno.removeSync(RUNTIME, { recursive: true }));

/** withDeniedFile (real kernel maps, a denied file) with the file opened `opens` times. */
function withOpened(
  pinRoot: string | null,
  opens: number,
  fn: (fb: FallbackSet) => Promise<void>,
): Promise<void> {
  return withDeniedFile(`${RUNTIME}/shim`, 4096, async (fb, _ring, file) => {
    openMany(file, opens);
    await fn(fb);
  }, pinRoot);
}

Deno.test({
  name: "promtool: the check reports a known-bad exposition (so a lint problem fails)" + SKIP,
  ignore: !PROMTOOL,
  fn: async () => {
    const bad = "# HELP aegisbpf_x_total_ns x\n# TYPE aegisbpf_x_total_ns counter\n" +
      "aegisbpf_x_total_ns 1\n";
    const r = await promtool(bad);
    ok(r.code !== 0, `promtool accepted a bad name: ${r.output}`);
    match(r.output, /aegisbpf_x_total_ns/);
    await assertClean("a good exposition", "# HELP a_total x\n# TYPE a_total counter\na_total 1\n");
  },
});

Deno.test({
  name: "promtool: every family at once (real kernel maps, every source, --detailed) is clean, " +
    "and matches docs/telemetry.md" + SKIP,
  ignore: !PROMTOOL,
  fn: async () => {
    await withOpened(null, 50, async (fb) => {
      const slo = `${RUNTIME}/perf-slo-summary.json`;
      Deno.writeTextFileSync(
        slo,
        JSON.stringify({
          gate_pass: true,
          rows: [{ name: "a", value: 1, threshold: 2, pass: true }],
        }),
      );
      const now = Math.floor(Date.now() / 1000);
      const text = await renderMetrics({
        map: mapsOf(fb),
        runtimeState: "ENFORCE",
        enforceCapable: true,
        blockers: [],
        emergency: { active: false, transitions: 2, stormActive: false },
        events: {
          emitted: 10,
          sinkDropped: 0,
          sinkWritten: 10,
          volume: { sampledOut: 1, folded: 2, untracked: 0 },
        },
        netBlocks: new NetBlockCounter().counts,
        sse: { droppedClients: 0 },
        unresolvedPaths: 1,
        perfSloPath: slo,
        selfTest: { byHook: { file_open: 1 }, liveCanaryEntries: 0 },
        proof: {
          results: { file: { ok: true, last_unix: now - 3, detail: "denied" } },
          now,
          unenforcedRules: 0,
          verifiedRules: 1,
        },
        process: PROC_SELF,
        build: agentBuildInfo(),
      }, { detailed: true });
      await assertClean("a full render", text);
      const rendered = families(text);
      const documented = documentedMetrics();
      deepStrictEqual(
        [...documented].filter((n) => !rendered.has(n)),
        [],
        "documented but not rendered",
      );
      deepStrictEqual(
        [...rendered].filter((n) => !documented.has(n)),
        [],
        "rendered but not documented",
      );
      ok((sample(text, "aegisbpf_blocks_total", '{action="audit"}') ?? 0) >= 50, text);
    });
  },
});

Deno.test({
  name: "promtool: `aegisbpf metrics` from the pins (no daemon) is clean" + SKIP,
  ignore: !PROMTOOL,
  fn: async () => {
    const pinRoot = `/sys/fs/bpf/aegis-prom-${crypto.randomUUID().slice(0, 8)}`;
    const prevRt = Deno.env.get("AEGIS_RUNTIME_DIR");
    Deno.env.set("AEGIS_RUNTIME_DIR", `${RUNTIME}/cli`);
    try {
      await withOpened(pinRoot, 5, async () => {
        for (const detailed of [false, true]) {
          const text = await renderFromPins(detailed, pinRoot);
          await assertClean(`the pins' render (detailed ${detailed})`, text);
          ok(!families(text).has("process_open_fds"), "the CLI's own process is not the agent");
          strictEqual(sample(text, "aegisbpf_blocks_total", '{action="audit"}'), 5);
        }
      });
    } finally {
      uninstallPins(pinRoot);
      if (prevRt === undefined) Deno.env.delete("AEGIS_RUNTIME_DIR");
      else Deno.env.set("AEGIS_RUNTIME_DIR", prevRt);
    }
  },
});

Deno.test({
  name: "promtool: the daemon's GET /metrics (audit mode, a deny rule) is clean; would-be blocks " +
    "counted by default; process_* are the daemon's; `aegisbpf metrics` leaves them out" + SKIP,
  ignore: !PROMTOOL,
  fn: async () => {
    const e = agentEnv();
    const denied = `${e.dir}/denied`;
    Deno.writeTextFileSync(denied, "secret\n");
    const pol = `${e.dir}/p.pol`;
    Deno.writeTextFileSync(pol, `version=1\n[deny_path]\n${denied}\n`);
    let a: Agent | null = null;
    try {
      const t0 = Date.now() / 1000;
      a = new Agent(["--audit", "--policy", pol], e.env);
      await a.ready();
      const N = 20;
      for (let i = 0; i < N; i++) Deno.readTextFileSync(denied); // audit: allowed, reported
      let text = "";
      for (let i = 0; i < 100; i++) {
        text = (await httpGet(e.port, "/metrics")).body as string;
        if ((sample(text, "aegisbpf_blocks_total", '{action="audit"}') ?? 0) >= N) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      ok(
        (sample(text, "aegisbpf_blocks_total", '{action="audit"}') ?? 0) >= N,
        `${N} denied opens in audit mode are not in the default metrics:\n${text}\n${a.err}`,
      );
      strictEqual(sample(text, "aegisbpf_blocks_total", '{action="block"}'), 0);
      await assertClean("the daemon's GET /metrics", text);
      const detailed = (await httpGet(e.port, "/metrics?detailed=1")).body as string;
      await assertClean("the daemon's GET /metrics?detailed=1", detailed);

      // the process metrics are the daemon's own
      const start = sample(text, "process_start_time_seconds")!;
      ok(start >= t0 - 2 && start <= Date.now() / 1000, `start ${start}, spawned at ${t0}`);
      ok(sample(text, "process_cpu_seconds_total")! > 0);
      ok(sample(text, "process_resident_memory_bytes")! > 16 << 20, "RSS of a Deno process");
      ok(
        sample(text, "process_virtual_memory_bytes")! >
          sample(text, "process_resident_memory_bytes")!,
      );
      const fds = sample(text, "process_open_fds")!;
      ok(fds > 3 && fds <= sample(text, "process_max_fds")!, `fds ${fds}`);
      const limits = Deno.readTextFileSync(`/proc/${a.proc.pid}/limits`);
      strictEqual(
        sample(text, "process_max_fds"),
        Number(/^Max open files\s+(\d+)/m.exec(limits)![1]),
        "the daemon's soft limit, not this test's",
      );
      match(
        text,
        /^aegisbpf_build_info\{abi_fingerprint="[0-9a-f]{12}",deno_version="[^"]+",libbpf_version="[^"]+",version="[^"]+"\} 1$/m,
      );

      // the CLI through the control socket: the same, without process_*
      for (const args of [["metrics"], ["metrics", "--detailed"]]) {
        const cli = await run(AGENT, args, e.env);
        strictEqual(cli.code, 0, cli.stderr);
        match(cli.stdout, /^# aegisbpf metrics from the running daemon\n/);
        await assertClean(`aegisbpf ${args.join(" ")}`, cli.stdout);
        ok(!/^(# (HELP|TYPE) )?process_/m.test(cli.stdout), "no process_* from the CLI");
        ok(families(cli.stdout).has("aegisbpf_build_info"));
      }
    } finally {
      await cleanupAgent(a, e);
    }
  },
});
