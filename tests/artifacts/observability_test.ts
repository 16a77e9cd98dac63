/**
 * Tier 1 (artifacts): the observability bundle in packaging/observability/
 * (docs/observability.md), checked without a running agent:
 *  - the alert rules pass `promtool check rules` and their unit tests
 *    `promtool test rules` (and a broken rule makes those tests fail); every
 *    alert the bundle promises is there, with `for:`, a severity and
 *    annotations, and is tested firing and not firing;
 *  - the scrape config passes `promtool check config`, alone and in a
 *    prometheus.yml with the rules; it scrapes the agent's default listener;
 *  - the Grafana dashboard: JSON, a Prometheus datasource variable every panel
 *    uses, unique ids, every expression valid PromQL (`promtool check rules`
 *    on them as recording rules), the panels the bundle promises;
 *  - every metric name of the rules and the dashboard is documented
 *    (tests/host/observability_test.ts checks them against a real scrape);
 *  - the Fluent Bit and Vector configs: structure, references between their
 *    parts, the event file path, and the event fields and types they name
 *    exist in docs/telemetry.md (the host test checks them on real events).
 * promtool comes from Debian's `prometheus` package (build/apt-packages.txt);
 * without it the promtool checks are skipped, the reason in their names.
 * Neither Fluent Bit nor Vector is packaged by Debian 12, so their configs are
 * checked here by parsing, not by the tools.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { parse as parseYaml, stringify as toYaml } from "yaml";
import { ROOT, run } from "../lib/helpers.ts";
import {
  alertRules,
  dashboard,
  dashboardExprs,
  dashboardPanels,
  documentedEvents,
  documentedMetrics,
  findPromtool,
  metricNames,
  OBS,
  substituteGrafanaVars,
} from "../lib/promql.ts";

const PROMTOOL = findPromtool();
const SKIP = PROMTOOL ? "" : " (SKIPPED: no promtool on PATH; apt-get install prometheus, " +
  "or run scripts/setup.sh, which installs it)";
if (!PROMTOOL) {
  Deno.stderr.writeSync(new TextEncoder().encode(`observability_test: skipped:${SKIP}\n`));
}

async function promtool(...args: string[]): Promise<{ code: number; out: string }> {
  const r = await run(PROMTOOL!, args);
  return { code: r.code, out: (r.stdout + r.stderr).trim() };
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** The alerts the bundle promises (issue 18): agent down, not enforcing, degraded, … */
const REQUIRED_ALERTS = [
  "AegisbpfAgentDown",
  "AegisbpfNotEnforcing",
  "AegisbpfDegraded",
  "AegisbpfEmergencyDisableActive",
  "AegisbpfRingbufDrops",
  "AegisbpfEventSinkDrops",
  "AegisbpfMapPressure",
  "AegisbpfPolicyRestoreFailed",
];

const JOB = "aegisbpf";
const EVENT_FILE = "/var/log/aegisbpf/events.jsonl";

Deno.test("metricNames: the PromQL lexer finds metrics, not functions, labels, keywords or durations", () => {
  const cases: [string, string[]][] = [
    ['up{job="aegisbpf"} == 0', ["up"]],
    [
      'sum by (hook, action) (rate(aegisbpf_hook_blocks_total{job="x",a=~"b|c"}[5m])) > 0',
      ["aegisbpf_hook_blocks_total"],
    ],
    [
      "sum by (hook) (rate(a_total[5m])) / sum by (hook) (rate(b_total[5m]) > 0)",
      ["a_total", "b_total"],
    ],
    ["time() - process_start_time_seconds", ["process_start_time_seconds"]],
    ['increase(x_total{a="sum(y)"}[5m] offset 1h) > 0.8', ["x_total"]],
    ["a and on(instance) b or ignoring(job) group_left(state) c unless d", ["a", "b", "c", "d"]],
    ["histogram_quantile(0.9, sum without (le) (rate(h_bucket[1m])))", ["h_bucket"]],
    ["max_over_time(m:rec[1h:5m]) * 1e3", ["m:rec"]],
  ];
  for (const [expr, want] of cases) deepStrictEqual(metricNames(expr), want, expr);
  strictEqual(
    substituteGrafanaVars('rate(a{job="$job",instance=~"$instance"}[$__rate_interval])'),
    'rate(a{job="aegisbpf",instance=~".*"}[5m])',
  );
});

Deno.test({
  name: "alerts.yml passes promtool check rules; alerts_test.yml passes promtool test rules" + SKIP,
  ignore: !PROMTOOL,
  fn: async () => {
    const check = await promtool("check", "rules", `${OBS}/prometheus/alerts.yml`);
    strictEqual(check.code, 0, check.out);
    match(check.out, /SUCCESS: \d+ rules found/);
    const t = await promtool("test", "rules", `${OBS}/prometheus/alerts_test.yml`);
    strictEqual(t.code, 0, t.out);
    match(t.out, /SUCCESS/);
  },
});

Deno.test({
  name: "promtool test rules fails when a rule is broken (the unit tests can fail)" + SKIP,
  ignore: !PROMTOOL,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "aegis-alerts-" });
    try {
      await Deno.copyFile(`${OBS}/prometheus/alerts_test.yml`, `${dir}/alerts_test.yml`);
      const rules = await Deno.readTextFile(`${OBS}/prometheus/alerts.yml`);
      const breakages: [string, string, string][] = [
        [
          "a higher map threshold",
          'aegisbpf_map_utilization{job="aegisbpf"} > 0.8',
          'aegisbpf_map_utilization{job="aegisbpf"} > 0.95',
        ],
        [
          "a longer for:",
          'expr: up{job="aegisbpf"} == 0\n        for: 2m',
          'expr: up{job="aegisbpf"} == 0\n        for: 10m',
        ],
        [
          "the wrong blocker code",
          'code="POLICY_RESTORE_FAILED"} == 1',
          'code="BPF_LSM_DISABLED"} == 1',
        ],
      ];
      for (const [what, find, repl] of breakages) {
        ok(rules.includes(find), `alerts.yml no longer has ${find}`);
        const broken = rules.replace(find, repl);
        await Deno.writeTextFile(`${dir}/alerts.yml`, broken);
        const r = await promtool("test", "rules", `${dir}/alerts_test.yml`);
        ok(r.code !== 0, `${what}: promtool test rules still passed:\n${r.out}`);
        match(r.out, /FAILED/, what);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("alerts.yml: every promised alert, each with for:, a severity, what to do, a job selector, and tested firing and quiet", () => {
  const rules = alertRules();
  const names = rules.map((r) => r.alert);
  for (const a of REQUIRED_ALERTS) ok(names.includes(a), `alert ${a} missing`);
  strictEqual(new Set(names).size, names.length, "alert names are unique");
  const tests = parseYaml(Deno.readTextFileSync(`${OBS}/prometheus/alerts_test.yml`)) as Json;
  deepStrictEqual(tests.rule_files, ["alerts.yml"]);
  const cases = (tests.tests as Json[]).flatMap((t) => t.alert_rule_test as Json[]);
  for (const r of rules) {
    const a = r.alert!;
    ok(a, `every rule is an alert: ${r.record}`);
    ok(/^\d+[smh]$/.test(r.for ?? ""), `${a}: for: missing`);
    ok(["critical", "warning"].includes(r.labels?.severity ?? ""), `${a}: severity`);
    ok((r.annotations?.summary ?? "").length > 10, `${a}: summary`);
    ok((r.annotations?.description ?? "").length > 80, `${a}: description (what to do)`);
    ok(r.expr.includes(`job="${JOB}"`), `${a}: selects job="${JOB}" (scrape.yml's job)`);
    const mine = cases.filter((c) => c.alertname === a);
    ok(mine.some((c) => (c.exp_alerts ?? []).length > 0), `${a}: no test where it fires`);
    ok(mine.some((c) => (c.exp_alerts ?? []).length === 0), `${a}: no test where it stays quiet`);
  }
});

/** scrape.yml, parsed. */
function scrapeConfig(): Json {
  return parseYaml(Deno.readTextFileSync(`${OBS}/prometheus/scrape.yml`));
}

Deno.test("scrape.yml: job aegisbpf on the agent's default listener, /metrics with detailed=1", () => {
  const jobs = scrapeConfig().scrape_configs as Json[];
  strictEqual(jobs.length, 1);
  const j = jobs[0];
  strictEqual(j.job_name, JOB);
  strictEqual(j.metrics_path, "/metrics");
  deepStrictEqual(j.params, { detailed: ["1"] });
  // the default of `run --http-listen` (src/cli/run.ts)
  const run = Deno.readTextFileSync(`${ROOT}/src/cli/run.ts`);
  const def = /\.env\("AEGIS_HTTP_LISTEN"\)\.default\("([^"]+)"\)/.exec(run);
  ok(def, "src/cli/run.ts: the --http-listen default");
  deepStrictEqual(j.static_configs, [{ targets: [def[1]] }]);
  match(def[1], /^127\.0\.0\.1:\d+$/, "a loopback listener: the Host header is allowed");
});

Deno.test({
  name: "scrape.yml passes promtool check config, alone and in a prometheus.yml with alerts.yml" +
    SKIP,
  ignore: !PROMTOOL,
  fn: async () => {
    const alone = await promtool("check", "config", `${OBS}/prometheus/scrape.yml`);
    strictEqual(alone.code, 0, alone.out);
    const dir = await Deno.makeTempDir({ prefix: "aegis-promcfg-" });
    try {
      const cfg = {
        global: { scrape_interval: "15s", external_labels: { node: "node-1" } },
        rule_files: [`${OBS}/prometheus/alerts.yml`],
        scrape_configs: scrapeConfig().scrape_configs,
      };
      await Deno.writeTextFile(`${dir}/prometheus.yml`, toYaml(cfg));
      const r = await promtool("check", "config", `${dir}/prometheus.yml`);
      strictEqual(r.code, 0, r.out);
      match(r.out, /SUCCESS: 1 rule files found/);
      // the check can fail: a misspelt key is reported
      await Deno.writeTextFile(
        `${dir}/bad.yml`,
        toYaml({ scrape_configs: [{ ...cfg.scrape_configs[0], metric_path: "/metrics" }] }),
      );
      const bad = await promtool("check", "config", `${dir}/bad.yml`);
      ok(bad.code !== 0, bad.out);
      match(bad.out, /metric_path/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Metric names the dashboard must show (issue 18's list). */
const DASHBOARD_MUST_SHOW = [
  "aegisbpf_runtime_state",
  "aegisbpf_enforce_capable",
  "aegisbpf_blocks_total",
  "aegisbpf_hook_invocations_total",
  "aegisbpf_hook_latency_seconds_total",
  "aegisbpf_ringbuf_drops_total",
  "aegisbpf_events_sink_dropped_total",
  "aegisbpf_map_utilization",
  "aegisbpf_enforcement_proof_ok",
  "aegisbpf_enforcement_proof_age_seconds",
  "aegisbpf_emergency_disable_active",
  "process_resident_memory_bytes",
  "process_cpu_seconds_total",
];

Deno.test("dashboard: JSON with a Prometheus datasource variable that every panel and query uses, unique ids, the promised panels", () => {
  const d = dashboard();
  strictEqual(d.uid, "aegisbpf-node");
  ok(typeof d.title === "string" && d.title.length > 0);
  ok(Number.isInteger(d.schemaVersion) && d.schemaVersion >= 30, "schemaVersion");
  const vars = d.templating.list as Json[];
  const ds = vars.find((v) => v.type === "datasource");
  ok(ds, "a datasource variable");
  strictEqual(ds.query, "prometheus");
  const job = vars.find((v) => v.name === "job");
  strictEqual(job?.query, JOB, "the job variable is scrape.yml's job");
  const dsRef = { type: "prometheus", uid: `\${${ds.name}}` };
  for (const v of vars.filter((v) => v.type === "query")) {
    deepStrictEqual(v.datasource, dsRef, `variable ${v.name}`);
  }
  // every variable a panel or expression uses is defined
  const defined = new Set(vars.map((v) => v.name));
  const text = JSON.stringify(d.panels);
  for (const m of text.matchAll(/\$\{?([A-Za-z_]\w*)/g)) {
    ok(m[1].startsWith("__") || defined.has(m[1]), `undefined variable $${m[1]}`);
  }
  const panels = dashboardPanels(d);
  const ids = panels.map((p) => p.id);
  strictEqual(new Set(ids).size, ids.length, "panel ids are unique");
  for (const p of panels) {
    ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `panel ${p.title} gridPos`);
    if (p.type === "row") continue;
    deepStrictEqual(p.datasource, dsRef, `panel "${p.title}" datasource`);
    ok((p.targets ?? []).length > 0, `panel "${p.title}" has no query`);
    const refs = p.targets.map((t: Json) => t.refId);
    strictEqual(new Set(refs).size, refs.length, `panel "${p.title}": refIds unique`);
    for (const t of p.targets) deepStrictEqual(t.datasource, dsRef, `panel "${p.title}" target`);
    ok(typeof p.description === "string" && p.description.length > 0, `${p.title}: description`);
  }
  const shown = new Set(
    dashboardExprs(d).flatMap((e) => metricNames(substituteGrafanaVars(e.expr))),
  );
  for (const n of DASHBOARD_MUST_SHOW) ok(shown.has(n), `the dashboard does not show ${n}`);
});

Deno.test({
  name: "dashboard: every expression (variables substituted) is valid PromQL for promtool" + SKIP,
  ignore: !PROMTOOL,
  fn: async () => {
    const exprs = dashboardExprs(dashboard());
    const rules = exprs.map((e, i) => ({
      record: `aegisbpf_dashboard:expr_${i}`,
      expr: substituteGrafanaVars(e.expr),
    }));
    const dir = await Deno.makeTempDir({ prefix: "aegis-dash-" });
    try {
      await Deno.writeTextFile(
        `${dir}/dash.yml`,
        toYaml({ groups: [{ name: "dashboard", rules }] }),
      );
      const r = await promtool("check", "rules", `${dir}/dash.yml`);
      strictEqual(r.code, 0, `${r.out}\n${exprs.map((e, i) => `${i}: ${e.where}`).join("\n")}`);
      match(r.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
      // the check can fail
      await Deno.writeTextFile(
        `${dir}/bad.yml`,
        toYaml({ groups: [{ name: "d", rules: [{ record: "a:b", expr: "sum by (x (y)" }] }] }),
      );
      ok((await promtool("check", "rules", `${dir}/bad.yml`)).code !== 0);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("every metric the alert rules and the dashboard query is documented in docs/telemetry.md", () => {
  const documented = documentedMetrics();
  const used = new Map<string, string>();
  for (const r of alertRules()) {
    for (const n of metricNames(r.expr)) used.set(n, `alert ${r.alert}`);
  }
  for (const e of dashboardExprs(dashboard())) {
    for (const n of metricNames(substituteGrafanaVars(e.expr))) used.set(n, e.where);
  }
  ok(used.size >= 20, `only ${used.size} names found: the extraction is broken`);
  const undocumented = [...used].filter(([n]) => n !== "up" && !documented.has(n));
  deepStrictEqual(undocumented, [], "queried but not in docs/telemetry.md");
});

/** A Fluent Bit classic config: sections in order, each with its key/value lines. */
function parseFluentBit(text: string): { section: string; kv: [string, string][] }[] {
  const out: { section: string; kv: [string, string][] }[] = [];
  for (const [i, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const sec = /^\[([A-Z_]+)\]$/.exec(line);
    if (sec) {
      out.push({ section: sec[1], kv: [] });
      continue;
    }
    const kv = /^(\S+)\s+(.+)$/.exec(line);
    if (!kv || out.length === 0) throw new Error(`line ${i + 1}: not "Key Value": ${raw}`);
    if (!/^\s+/.test(raw)) throw new Error(`line ${i + 1}: keys are indented: ${raw}`);
    out.at(-1)!.kv.push([kv[1], kv[2]]);
  }
  return out;
}

const get = (s: { kv: [string, string][] }, k: string): string | undefined =>
  s.kv.find(([key]) => key.toLowerCase() === k.toLowerCase())?.[1];
const getAll = (s: { kv: [string, string][] }, k: string): string[] =>
  s.kv.filter(([key]) => key.toLowerCase() === k.toLowerCase()).map(([, v]) => v);

/** Fluent Bit's tag matching: `*` matches anything. */
function tagMatches(pattern: string, tag: string): boolean {
  return new RegExp(
    `^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`,
  )
    .test(tag);
}

/** The documented block event types: the types that end in `block`. */
function blockTypes(types: Set<string>): string[] {
  return [...types].filter((t) => t === "block" || t.endsWith("_block")).sort();
}

Deno.test("Fluent Bit: tails the event file with the JSON parser; filters and outputs match its tags; the fields and types it names are documented", () => {
  const conf = parseFluentBit(Deno.readTextFileSync(`${OBS}/logging/fluent-bit.conf`));
  const parsers = parseFluentBit(Deno.readTextFileSync(`${OBS}/logging/parsers.conf`));
  const { types, fields } = documentedEvents();
  const service = conf.find((s) => s.section === "SERVICE")!;
  ok(service, "[SERVICE]");
  strictEqual(get(service, "Parsers_File"), "parsers.conf");
  const inputs = conf.filter((s) => s.section === "INPUT");
  strictEqual(inputs.length, 1);
  const input = inputs[0];
  strictEqual(get(input, "Name"), "tail");
  strictEqual(get(input, "Path"), EVENT_FILE, "the live file only (rotated files would repeat)");
  const parserName = get(input, "Parser");
  const parser = parsers.find((p) => p.section === "PARSER" && get(p, "Name") === parserName);
  ok(parser, `parser ${parserName} is defined in parsers.conf`);
  strictEqual(get(parser, "Format"), "json");
  // the record's time is the event's wall-clock time (every event has it)
  strictEqual(get(parser, "Time_Key"), "timestamp");
  ok(fields.has("timestamp"), "timestamp is a documented event field");
  strictEqual(get(parser, "Time_Format"), "%Y-%m-%dT%H:%M:%S.%LZ", "RFC 3339 with the fraction");
  strictEqual(get(parser, "Time_Keep"), "On");
  const tags = [get(input, "Tag")!];
  for (const f of conf.filter((s) => s.section === "FILTER")) {
    ok(conf.indexOf(f) > conf.indexOf(input));
    const match = get(f, "Match")!;
    ok(
      tags.some((t) => tagMatches(match, t)),
      `filter ${get(f, "Name")}: Match ${match} sees nothing`,
    );
    if (get(f, "Name") === "rewrite_tag") {
      for (const rule of getAll(f, "Rule")) {
        const [key, regex, newTag, keep] = rule.split(/\s+/);
        ok(key.startsWith("$"), rule);
        ok(fields.has(key.slice(1)), `rewrite_tag: ${key} is not an event field`);
        ok(["true", "false"].includes(keep), rule);
        const re = new RegExp(regex);
        deepStrictEqual(
          [...types].filter((t) => re.test(t)).sort(),
          blockTypes(types),
          `rewrite_tag ${regex} selects exactly the block types`,
        );
        tags.push(newTag);
      }
    }
  }
  const outputs = conf.filter((s) => s.section === "OUTPUT");
  ok(outputs.length > 0);
  for (const t of tags) {
    ok(outputs.some((o) => tagMatches(get(o, "Match")!, t)), `no output takes tag ${t}`);
  }
});

Deno.test("Vector: file source on the event file, parse and filter transforms wired to sinks; the fields and types it names are documented", () => {
  const v = parseYaml(Deno.readTextFileSync(`${OBS}/logging/vector.yaml`)) as Json;
  const { types, fields } = documentedEvents();
  const sources = v.sources as Record<string, Json>;
  const transforms = v.transforms as Record<string, Json>;
  const sinks = v.sinks as Record<string, Json>;
  const ids = [...Object.keys(sources), ...Object.keys(transforms), ...Object.keys(sinks)];
  strictEqual(new Set(ids).size, ids.length, "component ids are unique");
  const [src] = Object.values(sources);
  strictEqual(src.type, "file");
  deepStrictEqual(src.include, [EVENT_FILE], "the live file only (rotated files would repeat)");
  strictEqual(src.fingerprint?.strategy, "device_and_inode");
  // every input names a component upstream, every component reaches a sink
  const upstream = new Set(Object.keys(sources));
  for (const [id, t] of Object.entries(transforms)) {
    for (const i of t.inputs) ok(upstream.has(i), `transform ${id}: unknown input ${i}`);
    upstream.add(id);
  }
  const consumed = new Set<string>();
  for (const [id, s] of Object.entries(sinks)) {
    for (const i of s.inputs) ok(upstream.has(i), `sink ${id}: unknown input ${i}`);
    for (const i of s.inputs) consumed.add(i);
  }
  for (const [id, t] of Object.entries(transforms)) {
    for (const i of t.inputs) consumed.add(i);
    ok(
      consumed.has(id) || Object.values(sinks).some((s) => s.inputs.includes(id)),
      `${id}: unused`,
    );
  }
  // the event fields VRL reads: documented (Vector's own fields and ours aside)
  const vectorOwn = new Set(["message", "host", "file", "timestamp", "source_type"]);
  const ours = new Set(["source", "aegisbpf_parse_error", "read_at"]);
  const vrl = Object.values(transforms).map((t) => `${t.source ?? ""}\n${t.condition ?? ""}`).join(
    "\n",
  );
  const paths = new Set([...vrl.matchAll(/(?<![\w"])\.([a-z_]+)/g)].map((m) => m[1]));
  ok(paths.has("type"), "the filter reads .type");
  for (const p of paths) {
    ok(vectorOwn.has(p) || ours.has(p) || fields.has(p), `VRL reads .${p}: not an event field`);
  }
  // the block filter names exactly the documented block types
  const filter = Object.values(transforms).find((t) => t.type === "filter");
  const named = [...filter.condition.matchAll(/"([a-z_]+)"/g)].map((m: string[]) => m[1]).sort();
  deepStrictEqual(named, blockTypes(types));
});
