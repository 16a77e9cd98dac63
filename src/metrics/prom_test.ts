/**
 * A small parser of the Prometheus text exposition format 0.0.4, strict
 * about what our renderer must get right, run over real renders.
 */
import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import {
  ABI_LAYOUT,
  AEGIS_CFG_EMERGENCY_DISABLE,
  AEGIS_CFG_GENERATION,
  AEGIS_CNT_EVENTS,
  AEGIS_CNT_RINGBUF_DROPS,
  AEGIS_HOOK_FILE_OPEN,
  AEGIS_HOOK_SELF_TASK_KILL,
  AEGIS_HOOK_SELF_UNLINK,
  AEGIS_HOOK_SOCKET_CONNECT,
} from "../bpf/abi_gen.ts";
import { BLOCKER_CODES } from "../contracts.ts";
import { RULE_MAP_NAMES } from "../policy/generations.ts";
import { escapeLabelValue, Exposition } from "./prom.ts";
import { procFixture } from "./process_testing.ts";
import {
  agentBuildInfo,
  blockTotals,
  CAPACITY_MAPS,
  kernelOnlySources,
  type MetricsMap,
  type MetricsSources,
  NetBlockCounter,
  renderMetrics,
  visibleBlocks,
} from "./render.ts";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Parsed {
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Parse and validate; throws with the line number on any violation. */
export function parseExposition(text: string): Parsed {
  if (text !== "" && !text.endsWith("\n")) throw new Error("does not end with a newline");
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  const series = new Set<string>();
  const done = new Set<string>(); // families whose samples ended
  let current: string | null = null;
  const lines = text.split("\n").slice(0, -1);
  lines.forEach((line, i) => {
    const where = `line ${i + 1} "${line}"`;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) return; // a plain comment
      const [, kw, name, rest] = m;
      if (!NAME.test(name) || NAME.exec(name)![0] !== name) throw new Error(`${where}: bad name`);
      if (series.size > 0 && [...series].some((s) => familyOf(s, types) === name)) {
        throw new Error(`${where}: ${kw} after samples of ${name}`);
      }
      if (kw === "HELP") {
        if (help.has(name)) throw new Error(`${where}: second HELP`);
        if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) throw new Error(`${where}: bad escape`);
        help.set(name, rest);
      } else {
        if (types.has(name)) throw new Error(`${where}: second TYPE`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) {
          throw new Error(`${where}: unknown type`);
        }
        types.set(name, rest);
      }
      return;
    }
    if (line.trim() === "") throw new Error(`${where}: blank line`);
    const nm = NAME.exec(line);
    if (!nm) throw new Error(`${where}: no metric name`);
    const name = nm[0];
    let pos = name.length;
    const labels: Record<string, string> = {};
    if (line[pos] === "{") {
      pos++;
      while (line[pos] !== "}") {
        const lm = LABEL.exec(line.slice(pos));
        if (!lm) throw new Error(`${where}: bad label name at ${pos}`);
        const ln = lm[0];
        pos += ln.length;
        if (line.slice(pos, pos + 2) !== '="') throw new Error(`${where}: expected ="`);
        pos += 2;
        let v = "";
        for (;;) {
          const c = line[pos++];
          if (c === undefined) throw new Error(`${where}: unterminated label value`);
          if (c === '"') break;
          if (c === "\\") {
            const e = line[pos++];
            if (e === "n") v += "\n";
            else if (e === "\\" || e === '"') v += e;
            else throw new Error(`${where}: bad escape \\${e}`);
          } else v += c;
        }
        if (ln in labels) throw new Error(`${where}: label ${ln} twice`);
        labels[ln] = v;
        if (line[pos] === ",") pos++;
        else if (line[pos] !== "}") throw new Error(`${where}: expected , or }`);
      }
      pos++;
    }
    const rest = line.slice(pos);
    const vm = /^ (\S+)( -?\d+)?$/.exec(rest);
    if (!vm) throw new Error(`${where}: bad value part`);
    const raw = vm[1];
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    if (raw !== "NaN" && Number.isNaN(value)) throw new Error(`${where}: value ${raw}`);
    const fam = familyOf(name, types);
    if (!types.has(fam) || !help.has(fam)) throw new Error(`${where}: sample before HELP/TYPE`);
    if (fam !== current) {
      if (done.has(fam)) throw new Error(`${where}: samples of ${fam} are not together`);
      if (current) done.add(current);
      current = fam;
    }
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (series.has(key)) throw new Error(`${where}: duplicate series`);
    series.add(key);
    samples.push({ name, labels, value });
  });
  return { types, help, samples };
}

function familyOf(name: string, types: Map<string, string>): string {
  if (types.has(name)) return name;
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (name.endsWith(suffix) && types.has(name.slice(0, -suffix.length))) {
      return name.slice(0, -suffix.length);
    }
  }
  return name;
}

function get(p: Parsed, name: string, labels: Record<string, string> = {}): number | undefined {
  return p.samples.find((s) =>
    s.name === name && JSON.stringify(Object.entries(s.labels).sort()) ===
      JSON.stringify(Object.entries(labels).sort())
  )?.value;
}

// ---- the parser itself rejects what it must ----

Deno.test("parser: rejects malformed expositions", () => {
  const bad = [
    "a 1", // no newline
    "a 1\n", // no HELP/TYPE
    "# HELP a x\n# TYPE a gauge\na 1\na 2\n", // duplicate
    '# HELP a x\n# TYPE a gauge\na{l="1",l="2"} 1\n',
    '# HELP a x\n# TYPE a gauge\na{l="\\x"} 1\n',
    '# HELP a x\n# TYPE a gauge\na{1l="v"} 1\n',
    "# HELP a x\n# TYPE a gauge\na one\n",
    '# HELP a x\n# TYPE a gauge\na 1\n# HELP b y\n# TYPE b gauge\nb 1\na{x="1"} 2\n',
    "# HELP a x\n# TYPE a gauge\na 1\n# TYPE a gauge\n",
    "# HELP a x\n# TYPE a wobble\na 1\n",
    "# HELP 1a x\n# TYPE 1a gauge\n",
  ];
  for (const t of bad) throws(() => parseExposition(t), Error, JSON.stringify(t));
  const good = '# HELP a x\\ny\n# TYPE a counter\na_total 1\na{l="q\\"\\n\\\\"} NaN\n';
  // a_total has no TYPE of its own: family "a_total" → rejected; with the right name it parses
  throws(() => parseExposition(good));
  deepStrictEqual(
    parseExposition('# HELP a x\n# TYPE a gauge\na{l="q\\"\\n\\\\"} +Inf\n').samples,
    [{ name: "a", labels: { l: 'q"\n\\' }, value: Infinity }],
  );
});

Deno.test("Exposition: escapes label values, refuses bad names and duplicate series", () => {
  strictEqual(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
  const x = new Exposition().declare("m_total", "counter", "help with \\ and\nnewline");
  x.sample("m_total", 1n, { path: '/tmp/"evil"\nline' });
  const p = parseExposition(x.text());
  strictEqual(p.samples[0].labels.path, '/tmp/"evil"\nline');
  strictEqual(p.help.get("m_total"), "help with \\\\ and\\nnewline");
  throws(() => x.sample("m_total", 2, { path: '/tmp/"evil"\nline' }), /duplicate/);
  throws(() => x.sample("nope", 1), /not declared/);
  throws(() => new Exposition().declare("bad-name", "gauge", "x"), /not valid/);
  throws(() => x.sample("m_total", 1, { "bad-label": "x" }), /not valid/);
  throws(() => x.sample("m_total", 1, { __reserved: "x" }), /not valid/);
  strictEqual(new Exposition().declare("empty", "gauge", "x").text(), "");
});

// ---- fake maps with the kernel's layouts ----

const CPUS = 3;

/** A per-CPU (or plain) array map of u64 fields. */
class FakeArray implements MetricsMap {
  readonly maxEntries: number;
  readonly valueSize: number;
  readonly slots: number;
  #vals = new Map<number, bigint[][]>(); // index → cpu → fields
  constructor(maxEntries: number, valueSize: number, slots: number) {
    this.maxEntries = maxEntries;
    this.valueSize = valueSize;
    this.slots = slots;
  }
  set(index: number, cpu: number, fields: bigint[]): this {
    const v = this.#vals.get(index) ?? Array.from({ length: this.slots }, () => []);
    v[cpu] = fields;
    this.#vals.set(index, v);
    return this;
  }
  lookup(key: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> | null {
    const i = new DataView(key.buffer).getUint32(0, true);
    if (i >= this.maxEntries) return null;
    const stride = (this.valueSize + 7) & ~7;
    const out = new Uint8Array(this.slots * stride);
    const dv = new DataView(out.buffer);
    const v = this.#vals.get(i);
    v?.forEach((fields, cpu) =>
      fields.forEach((f, j) => dv.setBigUint64(cpu * stride + j * 8, f, true))
    );
    return out;
  }
  keys(): Uint8Array<ArrayBuffer>[] {
    return [];
  }
  sumU64(index: number): bigint {
    const v = this.#vals.get(index);
    return v ? v.reduce((s, f) => s + (f[0] ?? 0n), 0n) : 0n;
  }
}

/** A hash map with given keys. */
class FakeHash implements MetricsMap {
  readonly valueSize = 8;
  readonly slots = 1;
  constructor(readonly maxEntries: number, readonly keyList: Uint8Array<ArrayBuffer>[]) {}
  lookup(): null {
    return null;
  }
  keys(): Uint8Array<ArrayBuffer>[] {
    return this.keyList;
  }
  sumU64(): bigint {
    return 0n;
  }
}

const INODE_KEY = ABI_LAYOUT.structs.aegis_inode_key;
function inodeKeys(n: number, gen: number): Uint8Array<ArrayBuffer>[] {
  return Array.from({ length: n }, (_, i) => {
    const k = new Uint8Array(INODE_KEY.size);
    const dv = new DataView(k.buffer);
    dv.setBigUint64(INODE_KEY.fields.ino.offset, BigInt(i + 1), true);
    dv.setUint32(INODE_KEY.fields.gen.offset, gen, true);
    return k;
  });
}

function fakeMaps(): Record<string, MetricsMap> {
  const counters = new FakeArray(8, 8, CPUS)
    .set(AEGIS_CNT_RINGBUF_DROPS, 0, [5n]).set(AEGIS_CNT_RINGBUF_DROPS, 2, [7n])
    .set(AEGIS_CNT_EVENTS, 1, [1000n]);
  const hs = ABI_LAYOUT.structs.aegis_hook_stat;
  const hooks = new FakeArray(16, hs.size, CPUS)
    .set(AEGIS_HOOK_FILE_OPEN, 0, [100n, 3n, 1n, 5000n])
    .set(AEGIS_HOOK_FILE_OPEN, 1, [50n, 2n, 0n, 2500n])
    .set(AEGIS_HOOK_SOCKET_CONNECT, 2, [10n, 1n, 4n, 700n]);
  const config = new FakeArray(16, 8, 1)
    .set(AEGIS_CFG_GENERATION, 0, [1n]).set(AEGIS_CFG_EMERGENCY_DISABLE, 0, [1n]);
  const maps: Record<string, MetricsMap> = {
    aegis_counters: counters,
    aegis_hook_stats: hooks,
    aegis_config: config,
  };
  for (const name of CAPACITY_MAPS) maps[name] = new FakeHash(4096, []);
  // 10 stale entries of generation 0, 30 live ones of generation 1
  maps.aegis_deny_inode = new FakeHash(65536, [...inodeKeys(10, 0), ...inodeKeys(30, 1)]);
  return maps;
}

async function tmpSlo(content: string | null): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "aegis-prom-" });
  const p = `${dir}/perf-slo-summary.json`;
  if (content !== null) await Deno.writeTextFile(p, content);
  return p;
}

/** A fake /proc for the process_* metrics (3 s CPU, 117212 kB resident, 5 fds). */
const PROC = procFixture();
globalThis.addEventListener("unload", () => Deno.removeSync(PROC.root, { recursive: true }));

function daemonSources(perfSloPath: string, maps = fakeMaps()): MetricsSources {
  const net = new NetBlockCounter();
  return {
    map: (n) => maps[n] ?? null,
    runtimeState: "AUDIT_FALLBACK",
    enforceCapable: false,
    blockers: ["POLICY_RESTORE_FAILED"],
    emergency: { active: true, transitions: 4, stormActive: false },
    events: {
      emitted: 1000,
      sinkDropped: 10,
      sinkWritten: 990,
      volume: { sampledOut: 21, folded: 22, untracked: 23 },
    },
    netBlocks: net.counts,
    sse: { droppedClients: 2 },
    unresolvedPaths: 3,
    perfSloPath,
    process: PROC,
    build: agentBuildInfo(),
  };
}

/** The daemon's own families: build info and the standard process metrics. */
const DAEMON_ONLY = [
  "aegisbpf_build_info",
  "process_cpu_seconds_total",
  "process_resident_memory_bytes",
  "process_virtual_memory_bytes",
  "process_start_time_seconds",
  "process_open_fds",
  "process_max_fds",
];

const SPEC_NAMES = [
  "aegisbpf_blocks_total",
  "aegisbpf_ringbuf_drops_total",
  "aegisbpf_net_blocks_total",
  "aegisbpf_deny_inode_entries",
  "aegisbpf_map_capacity",
  "aegisbpf_map_utilization",
  "aegisbpf_runtime_state",
  "aegisbpf_enforce_capable",
  "aegisbpf_enforce_blocker",
  "aegisbpf_emergency_toggle_transitions_total",
  "aegisbpf_emergency_toggle_storm_active",
  "aegisbpf_hook_invocations_total",
  "aegisbpf_hook_latency_seconds_total",
  "aegisbpf_events_emitted_total",
  "aegisbpf_perf_slo_file_present",
  "aegisbpf_perf_slo_file_malformed",
  "aegisbpf_perf_slo_gate_pass",
  "aegisbpf_perf_slo_failed_rows",
];

Deno.test("render: every docs/telemetry.md name, well-formed, kernel counters summed over CPUs", async () => {
  const slo = await tmpSlo(JSON.stringify({ gate_pass: true, rows: [] }));
  try {
    for (const detailed of [false, true]) {
      const p = parseExposition(await renderMetrics(daemonSources(slo), { detailed }));
      for (const n of [...SPEC_NAMES, ...DAEMON_ONLY]) {
        ok(p.types.has(n), `${n} missing (detailed ${detailed})`);
      }
      const build = p.samples.filter((s) => s.name === "aegisbpf_build_info");
      strictEqual(build.length, 1);
      strictEqual(build[0].value, 1);
      deepStrictEqual(Object.keys(build[0].labels).sort(), [
        "abi_fingerprint",
        "deno_version",
        "libbpf_version",
        "version",
      ]);
      strictEqual(build[0].labels.deno_version, Deno.version.deno);
      match(build[0].labels.abi_fingerprint, /^[0-9a-f]{12}$/);
      strictEqual(get(p, "process_open_fds"), 5);
      strictEqual(get(p, "process_cpu_seconds_total"), 3);
      strictEqual(get(p, "process_resident_memory_bytes"), 117212 * 1024);
      // what promtool's lint says about names (tests/host/promtool_test.ts runs promtool itself)
      for (const [n, t] of p.types) {
        strictEqual(n.endsWith("_total"), t === "counter", `${n} (${t}): _total iff a counter`);
        ok(!/_(ns|us|ms|kb|mb|gb|pct|percent|secs?|mins?|hrs?)(_|$)/.test(n), `${n}: base units`);
        ok(!/_(counter|gauge|summary|histogram|untyped)(_|$)/.test(n), `${n}: a type in its name`);
      }
      strictEqual(get(p, "aegisbpf_ringbuf_drops_total"), 12);
      strictEqual(get(p, "aegisbpf_events_emitted_total"), 1000);
      // blocks and would-be blocks (audits), both by default (docs/telemetry.md)
      strictEqual(get(p, "aegisbpf_blocks_total", { action: "block" }), 6);
      strictEqual(get(p, "aegisbpf_blocks_total", { action: "audit" }), 5);
      strictEqual(p.samples.filter((s) => s.name === "aegisbpf_blocks_total").length, 2);
      strictEqual(get(p, "aegisbpf_hook_invocations_total", { hook: "file_open" }), 150);
      strictEqual(
        get(p, "aegisbpf_hook_latency_seconds_total", { hook: "file_open" }),
        7500 / 1e9,
      );
      strictEqual(get(p, "aegisbpf_hook_invocations_total", { hook: "socket_connect" }), 10);
      strictEqual(get(p, "aegisbpf_hook_invocations_total", { hook: "bpf" }), 0);
      strictEqual(get(p, "aegisbpf_deny_inode_entries"), 30);
      strictEqual(get(p, "aegisbpf_map_capacity", { map: "aegis_deny_inode" }), 65536);
      strictEqual(get(p, "aegisbpf_map_utilization", { map: "aegis_deny_inode" }), 40 / 65536);
      for (const m of RULE_MAP_NAMES) ok(get(p, "aegisbpf_map_capacity", { map: m }), m);
      strictEqual(get(p, "aegisbpf_runtime_state", { state: "AUDIT_FALLBACK" }), 1);
      strictEqual(get(p, "aegisbpf_runtime_state", { state: "ENFORCE" }), 0);
      strictEqual(get(p, "aegisbpf_runtime_state", { state: "UNKNOWN" }), 0);
      strictEqual(p.samples.filter((s) => s.name === "aegisbpf_runtime_state").length, 5);
      strictEqual(get(p, "aegisbpf_enforce_capable"), 0);
      // every known blocker code has a series; the ones that hold are 1
      strictEqual(get(p, "aegisbpf_enforce_blocker", { code: "POLICY_RESTORE_FAILED" }), 1);
      strictEqual(get(p, "aegisbpf_enforce_blocker", { code: "RUN_POLICY_FAILED" }), 0);
      strictEqual(get(p, "aegisbpf_enforce_blocker", { code: "BPF_LSM_DISABLED" }), 0);
      deepStrictEqual(
        p.samples.filter((s) => s.name === "aegisbpf_enforce_blocker").map((s) => s.labels.code),
        [...BLOCKER_CODES],
      );
      strictEqual(get(p, "aegisbpf_emergency_disable_active"), 1);
      strictEqual(get(p, "aegisbpf_emergency_toggle_transitions_total"), 4);
      strictEqual(get(p, "aegisbpf_net_blocks_total", { type: "cidr", action: "block" }), 0);
      strictEqual(get(p, "aegisbpf_net_blocks_total", { type: "cidr", action: "audit" }), 0);
      strictEqual(get(p, "aegisbpf_events_sink_dropped_total"), 10);
      strictEqual(get(p, "aegisbpf_events_published_total"), 1000);
      strictEqual(get(p, "aegisbpf_events_written_total"), 990);
      strictEqual(get(p, "aegisbpf_events_sampled_out_total"), 21);
      strictEqual(get(p, "aegisbpf_events_folded_total"), 22);
      strictEqual(get(p, "aegisbpf_events_dedup_untracked_total"), 23);
      strictEqual(get(p, "aegisbpf_sse_clients_dropped_total"), 2);
      strictEqual(get(p, "aegisbpf_policy_unresolved_paths"), 3);
      strictEqual(get(p, "aegisbpf_perf_slo_gate_pass"), 1);
      strictEqual(
        get(p, "aegisbpf_hook_blocks_total", { hook: "file_open", action: "block" }),
        detailed ? 5 : undefined,
      );
      strictEqual(
        get(p, "aegisbpf_hook_blocks_total", { hook: "socket_connect", action: "audit" }),
        detailed ? 4 : undefined,
      );
      ok(!p.types.has("aegisbpf_hook_audits_total"), "renamed: hook_blocks_total{action=audit}");
      strictEqual(
        get(p, "aegisbpf_ringbuf_drops_per_cpu_total", { cpu: "2" }),
        detailed ? 7 : undefined,
      );
    }
  } finally {
    await Deno.remove(slo.slice(0, slo.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("render: perf-SLO present/malformed/gate_pass follow the file on every render", async () => {
  const slo = await tmpSlo(null);
  try {
    const src = daemonSources(slo);
    const read = async () => parseExposition(await renderMetrics(src, { detailed: false }));
    let p = await read();
    strictEqual(get(p, "aegisbpf_perf_slo_file_present"), 0);
    strictEqual(get(p, "aegisbpf_perf_slo_gate_pass"), 0);
    await Deno.writeTextFile(
      slo,
      JSON.stringify({
        gate_pass: false,
        rows: [{ name: "a", value: 1, threshold: 0, pass: false }],
      }),
    );
    p = await read();
    strictEqual(get(p, "aegisbpf_perf_slo_file_present"), 1);
    strictEqual(get(p, "aegisbpf_perf_slo_failed_rows"), 1);
    await Deno.writeTextFile(slo, '{"gate_pass": true');
    p = await read();
    strictEqual(get(p, "aegisbpf_perf_slo_file_present"), 1);
    strictEqual(get(p, "aegisbpf_perf_slo_file_malformed"), 1);
    strictEqual(get(p, "aegisbpf_perf_slo_gate_pass"), 0);
  } finally {
    await Deno.remove(slo.slice(0, slo.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("render: CLI without a daemon (maps only): state UNKNOWN, unknowns left out", async () => {
  const slo = await tmpSlo(null);
  try {
    const maps = fakeMaps();
    const p = parseExposition(
      await renderMetrics(
        kernelOnlySources((n) => maps[n] ?? null, slo),
        { detailed: true },
      ),
    );
    strictEqual(get(p, "aegisbpf_runtime_state", { state: "UNKNOWN" }), 1);
    strictEqual(get(p, "aegisbpf_enforce_capable"), undefined);
    ok(!p.types.has("aegisbpf_enforce_blocker"), "blockers are the daemon's to know");
    // the CLI's build and process are not the agent's
    for (const n of DAEMON_ONLY) ok(!p.types.has(n), n);
    strictEqual(get(p, "aegisbpf_emergency_disable_active"), 1, "read from the config map");
    strictEqual(get(p, "aegisbpf_ringbuf_drops_total"), 12);
    // no maps at all still renders a valid exposition
    const q = parseExposition(
      await renderMetrics({ ...daemonSources(slo), map: () => null }, { detailed: true }),
    );
    strictEqual(get(q, "aegisbpf_ringbuf_drops_total"), undefined);
    strictEqual(get(q, "aegisbpf_emergency_disable_active"), 1, "from the source");
  } finally {
    await Deno.remove(slo.slice(0, slo.lastIndexOf("/")), { recursive: true });
  }
});

Deno.test("NetBlockCounter: counts blocks and audits (would-be blocks) by rule type", () => {
  const c = new NetBlockCounter();
  const base = {
    kind: "net_block" as const,
    pid: 1,
    tid: 1,
    ppid: 0,
    uid: 0,
    cgid: 1,
    startTime: 1,
    parentStartTime: 0,
    comm: "x",
    ktimeNs: 1,
    family: 2,
    addr: "1.2.3.4",
    port: 1,
    proto: 6,
    ruleId: 1,
    hook: AEGIS_HOOK_SOCKET_CONNECT,
  };
  c.observe({ ...base, action: 1, ruleType: 4 });
  c.observe({ ...base, action: 1, ruleType: 4 });
  c.observe({ ...base, action: 0, ruleType: 3 });
  c.observe({ ...base, action: 1, ruleType: 11 });
  c.observe({ ...base, action: 0, ruleType: 3 });
  c.observe({ ...base, action: 2, ruleType: 3 }); // a signal is a block
  strictEqual(c.counts.block.cidr, 2);
  strictEqual(c.counts.block.ip, 1);
  strictEqual(c.counts.block.cg_port, 1);
  strictEqual(c.counts.audit.ip, 2);
  strictEqual(c.counts.audit.cidr, 0);
});

Deno.test("render: the proof's canary denies and entries are not user-visible; proof gauges", async () => {
  const slo = await tmpSlo(null);
  const src: MetricsSources = {
    ...daemonSources(slo),
    selfTest: { byHook: { file_open: 2 }, liveCanaryEntries: 1 },
    proof: {
      results: { file: { ok: false, last_unix: 1000, detail: "opened" } },
      now: 1042,
    },
  };
  const p = parseExposition(await renderMetrics(src, { detailed: true }));
  strictEqual(
    get(p, "aegisbpf_blocks_total", { action: "block" }),
    4,
    "6 kernel blocks, 2 of them the canary's",
  );
  strictEqual(get(p, "aegisbpf_blocks_total", { action: "audit" }), 5, "audits untouched");
  strictEqual(get(p, "aegisbpf_hook_blocks_total", { hook: "file_open", action: "block" }), 3);
  strictEqual(get(p, "aegisbpf_self_test_denies_total", { hook: "file_open" }), 2);
  strictEqual(get(p, "aegisbpf_deny_inode_entries"), 29);
  strictEqual(get(p, "aegisbpf_enforcement_proof_ok", { surface: "file" }), 0);
  strictEqual(get(p, "aegisbpf_enforcement_proof_age_seconds", { surface: "file" }), 42);
  strictEqual(get(p, "aegisbpf_enforcement_proof_ok", { surface: "exec" }), undefined);
  // more self-test denies than the kernel counted (a reset) never goes negative
  const q = parseExposition(
    await renderMetrics(
      { ...src, selfTest: { byHook: { file_open: 99 }, liveCanaryEntries: 99 } },
      {
        detailed: true,
      },
    ),
  );
  strictEqual(get(q, "aegisbpf_hook_blocks_total", { hook: "file_open", action: "block" }), 0);
  strictEqual(get(q, "aegisbpf_deny_inode_entries"), 0);
  await Deno.remove(slo.replace(/\/[^/]*$/, ""), { recursive: true });
});

Deno.test("visibleBlocks: a probe in flight never shows its deny, and the count never goes down", () => {
  const st = (n: number, p: { hook: string; floor: bigint } | null = null) => ({
    byHook: { file_open: n },
    liveCanaryEntries: 1,
    pending: p ? [p] : [],
  });
  // 10 kernel blocks, 4 of them canary: 6 visible
  strictEqual(visibleBlocks(10n, "file_open", st(4)), 6n);
  strictEqual(visibleBlocks(10n, "inode_permission", st(4)), 10n, "other hooks untouched");
  const p = { hook: "file_open", floor: 6n };
  strictEqual(visibleBlocks(10n, "file_open", st(4, p)), 6n, "probe started, not denied yet");
  strictEqual(visibleBlocks(11n, "file_open", st(4, p)), 6n, "denied, not yet counted");
  strictEqual(visibleBlocks(12n, "file_open", st(4, p)), 7n, "a user deny meanwhile shows");
  strictEqual(visibleBlocks(12n, "file_open", st(5)), 7n, "counted: same number");
  strictEqual(visibleBlocks(0n, "file_open", st(0, { hook: "file_open", floor: 0n })), 0n);
});

Deno.test("blockTotals: one pass splits policy blocks from tamper attempts, summed over CPUs", () => {
  const hs = ABI_LAYOUT.structs.aegis_hook_stat;
  const at = hs.fields.blocks.offset / 8;
  const stat = (blocks: bigint) => {
    const f = new Array<bigint>(hs.size / 8).fill(7n); // other fields must not count
    f[at] = blocks;
    return f;
  };
  const hooks = new FakeArray(32, hs.size, CPUS)
    .set(AEGIS_HOOK_FILE_OPEN, 0, stat(3n)).set(AEGIS_HOOK_FILE_OPEN, 1, stat(2n))
    .set(AEGIS_HOOK_SOCKET_CONNECT, 2, stat(4n))
    .set(AEGIS_HOOK_SELF_UNLINK, 0, stat(5n)).set(AEGIS_HOOK_SELF_TASK_KILL, 2, stat(6n));
  deepStrictEqual(blockTotals(hooks), { policy: 9n, tamper: 11n });
  deepStrictEqual(blockTotals(new FakeArray(32, hs.size, CPUS)), { policy: 0n, tamper: 0n });
});
