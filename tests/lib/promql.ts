/**
 * The metric names in PromQL expressions, and the expressions of the
 * observability bundle (packaging/observability/: the alert rules and the
 * Grafana dashboard), for tests/artifacts/observability_test.ts and
 * tests/host/observability_test.ts.
 *
 * The extraction is lexical, enough for the expressions we ship: string
 * literals, label matchers `{…}`, ranges `[…]`, grouping clauses
 * (`by (…)`, `without`, `on`, `ignoring`, `group_left/right`) and
 * numbers/durations are removed; an identifier followed by `(` is a
 * function; keywords and aggregation operators are dropped; every other
 * identifier is a metric name.
 * tests/artifacts/observability_test.ts checks it on known expressions.
 *
 * @module
 */
import { parse as parseYaml } from "yaml";
import { ROOT } from "./helpers.ts";

export const OBS = `${ROOT}/packaging/observability`;

const KEYWORDS = new Set([
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "and",
  "or",
  "unless",
  "offset",
  "atan2",
  "inf",
  "nan",
  // aggregation operators: `sum by (x) (…)` puts the clause between name and "("
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
]);

/**
 * Grafana's variables as PromQL can take them: `$__rate_interval` and other
 * `$__…` intervals become `5m`, `$job` the job name, any other `$var` `.*`.
 */
export function substituteGrafanaVars(expr: string, job = "aegisbpf"): string {
  return expr
    .replace(/\$\{?__(rate_interval|interval|range)\}?/g, "5m")
    .replace(/\$\{?job\}?/g, job)
    .replace(/\$\{?[A-Za-z_]\w*\}?/g, ".*");
}

/** The metric names an expression selects, sorted. */
export function metricNames(expr: string): string[] {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings
    .replace(/\{[^}]*\}/g, " ") // label matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges and subqueries
    .replace(/#.*$/gm, " "); // comments
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " $1 ");
  s = s.replace(/\boffset\s+-?[0-9][0-9a-z]*/g, " ");
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    const [, id, call] = m;
    if (call || KEYWORDS.has(id.toLowerCase())) continue;
    names.add(id);
  }
  return [...names].sort();
}

/** One alerting or recording rule of alerts.yml. */
export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** The rules of packaging/observability/prometheus/alerts.yml. */
export function alertRules(path = `${OBS}/prometheus/alerts.yml`): Rule[] {
  const doc = parseYaml(Deno.readTextFileSync(path)) as { groups: { rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

/** A Grafana dashboard's expressions: where each is and its PromQL (variables as written). */
export interface DashboardExpr {
  where: string;
  expr: string;
}

// deno-lint-ignore no-explicit-any
type Json = any;

/** Every panel of a dashboard, rows' nested panels included. */
export function dashboardPanels(dash: Json): Json[] {
  const out: Json[] = [];
  for (const p of dash.panels ?? []) {
    out.push(p);
    for (const q of p.panels ?? []) out.push(q);
  }
  return out;
}

/** The PromQL of every panel target and query variable of a dashboard. */
export function dashboardExprs(dash: Json): DashboardExpr[] {
  const out: DashboardExpr[] = [];
  for (const p of dashboardPanels(dash)) {
    for (const t of p.targets ?? []) {
      if (typeof t.expr === "string") {
        out.push({ where: `panel "${p.title}" target ${t.refId}`, expr: t.expr });
      }
    }
  }
  for (const v of dash.templating?.list ?? []) {
    if (v.type !== "query") continue;
    const q = typeof v.query === "string" ? v.query : v.query?.query;
    if (typeof q !== "string") continue;
    // label_values(SELECTOR, label) / query_result(EXPR): the PromQL inside
    const lv = /^\s*label_values\((.*),\s*\w+\s*\)\s*$/.exec(q);
    const qr = /^\s*query_result\((.*)\)\s*$/.exec(q);
    out.push({ where: `variable $${v.name}`, expr: lv?.[1] ?? qr?.[1] ?? q });
  }
  return out;
}

/** The dashboard of the bundle, parsed. */
export function dashboard(path = `${OBS}/grafana/aegisbpf.json`): Json {
  return JSON.parse(Deno.readTextFileSync(path));
}

/** promtool's path (Debian's `prometheus` package), or null when it is not installed. */
export function findPromtool(): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/bin"])) {
    try {
      if (Deno.statSync(`${dir}/promtool`).isFile) return `${dir}/promtool`;
    } catch { /* not here */ }
  }
  return null;
}

/** The metric names docs/telemetry.md lists under "## Metrics" (the rename table excepted). */
export function documentedMetrics(): Set<string> {
  const doc = Deno.readTextFileSync(`${ROOT}/docs/telemetry.md`);
  const start = doc.indexOf("\n## Metrics\n");
  const end = doc.indexOf("\n### Metric names", start);
  if (start < 0 || end < start) throw new Error("docs/telemetry.md: no Metrics section");
  return new Set(
    [...doc.slice(start, end).matchAll(/`((?:aegisbpf|process)_[a-z_]+)/g)].map((m) => m[1])
      .filter((n) => !n.endsWith("_")),
  );
}

/**
 * The event types and field names docs/telemetry.md documents ("## Events"
 * up to "## Sinks"): `types` from the `type` row of the field table and the
 * daemon's own events named there, `fields` every backticked identifier of
 * the section (a superset: values too, such as `AUDIT`).
 */
export function documentedEvents(): { types: Set<string>; fields: Set<string> } {
  const doc = Deno.readTextFileSync(`${ROOT}/docs/telemetry.md`);
  const start = doc.indexOf("\n## Events\n");
  const end = doc.indexOf("\n## Sinks", start);
  if (start < 0 || end < start) throw new Error("docs/telemetry.md: no Events section");
  const sec = doc.slice(start, end);
  // the `type` rows of the field tables (every event's, every kernel event's)
  const typeRows = [...sec.matchAll(/^\| `type`\s*\|(.*)\|$/gm)];
  if (typeRows.length === 0) {
    throw new Error("docs/telemetry.md: no `type` row in the Events tables");
  }
  const types = new Set(
    typeRows.flatMap((row) => [...row[1].matchAll(/`([a-z_]+)`/g)].map((m) => m[1])),
  );
  // the daemon's own events, where the section names them
  for (const own of ["self_test", "state_change", "control_change", "policy_restored"]) {
    if (sec.includes(`\`${own}\``)) types.add(own);
  }
  const fields = new Set([...sec.matchAll(/`([A-Za-z_][A-Za-z0-9_]*)`/g)].map((m) => m[1]));
  return { types, fields };
}
