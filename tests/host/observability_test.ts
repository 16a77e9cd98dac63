/**
 * Host tier (root): the observability bundle (packaging/observability/,
 * docs/observability.md) against the real daemon on this kernel.
 *  - every metric name in every PromQL expression of the Grafana dashboard
 *    and the alert rules is in a real scrape of the daemon (GET /metrics and
 *    `?detailed=1`, which scrape.yml asks for). A name that exists only in a
 *    state this host cannot reach (the enforcement proof's gauges exist only
 *    while the agent enforces, and this kernel refuses BPF LSM programs) must
 *    be listed in STATE_ONLY with the reason, be documented, and be emitted
 *    by the renderer when that state's sources are there; the test prints
 *    each such name;
 *  - the event file with `--log-file-mode 0640 --log-file-group G`: created
 *    with that mode and group, readable by an unprivileged user in G and not
 *    by one outside it (setpriv), given the same mode and group when SIGHUP
 *    reopens it after a rotation (a wider file logrotate created is narrowed,
 *    and the agent says so); its real events carry every field and type the
 *    Fluent Bit and Vector configs name;
 *  - without CAP_CHOWN (the systemd unit's capability set) a setgid log
 *    directory gives the file its group, and a plain one refuses the start
 *    with the remedy;
 *  - a world-writable mode and an unknown group refuse the start, naming the option.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { renderMetrics } from "../../src/metrics/render.ts";
import { AGENT, Agent, agentEnv, cleanupAgent, httpGet, waitUntil } from "../lib/agent.ts";
import { run } from "../lib/helpers.ts";
import {
  alertRules,
  dashboard,
  dashboardExprs,
  documentedEvents,
  documentedMetrics,
  metricNames,
  OBS,
  substituteGrafanaVars,
} from "../lib/promql.ts";

/**
 * Metrics that exist only in some runtime state, and which state: checked
 * against the renderer (and the docs) when the daemon here is not in it.
 */
const STATE_ONLY: Record<string, string> = {
  aegisbpf_enforcement_proof_ok: "ENFORCE (proofs run only while the agent enforces)",
  aegisbpf_enforcement_proof_age_seconds: "ENFORCE (proofs run only while the agent enforces)",
  aegisbpf_unenforced_rules: "ENFORCE (rule verification runs with the proofs)",
  aegisbpf_verified_rules: "ENFORCE (rule verification runs with the proofs)",
};

/** Series Prometheus makes itself. */
const PROMETHEUS_OWN = new Set(["up"]);

/** Family names with samples (# TYPE lines; families without samples are left out). */
function families(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
}

/** Every metric name the bundle queries, with where. */
function queriedNames(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const add = (n: string, where: string) => used.set(n, [...(used.get(n) ?? []), where]);
  for (const r of alertRules()) for (const n of metricNames(r.expr)) add(n, `alert ${r.alert}`);
  for (const e of dashboardExprs(dashboard())) {
    for (const n of metricNames(substituteGrafanaVars(e.expr))) add(n, `dashboard ${e.where}`);
  }
  return used;
}

/** A file readable by a deny rule's test: the policy denies it (audit: only reported). */
function deniedFileAndPolicy(dir: string): { denied: string; pol: string } {
  const denied = `${dir}/denied`;
  Deno.writeTextFileSync(denied, "secret\n");
  const pol = `${dir}/p.pol`;
  Deno.writeTextFileSync(pol, `version=1\n[deny_path]\n${denied}\n`);
  return { denied, pol };
}

Deno.test("observability: every metric of the dashboard and the alert rules is in a real scrape of the daemon (state-only ones in the renderer)", async () => {
  const e = agentEnv();
  const { denied, pol } = deniedFileAndPolicy(e.dir);
  let a: Agent | null = null;
  try {
    a = new Agent(["--audit", "--policy", pol], e.env);
    await a.ready();
    for (let i = 0; i < 5; i++) Deno.readTextFileSync(denied);
    const plain = (await httpGet(e.port, "/metrics")).body as string;
    const detailed = (await httpGet(e.port, "/metrics?detailed=1")).body as string;
    const scraped = families(detailed);
    for (const n of families(plain)) ok(scraped.has(n), `${n}: in the plain scrape, not detailed`);
    const state = /^aegisbpf_runtime_state\{state="([A-Z_]+)"\} 1$/m.exec(plain)?.[1];
    ok(state, `no runtime state in the scrape:\n${plain}`);

    const used = queriedNames();
    ok(used.size >= 20, `only ${used.size} names: the extraction is broken`);
    const documented = documentedMetrics();
    const missing: string[] = [];
    const stateOnly: string[] = [];
    for (const [n, where] of used) {
      if (PROMETHEUS_OWN.has(n) || scraped.has(n)) continue;
      const only = STATE_ONLY[n];
      if (only && !only.startsWith(state!)) stateOnly.push(n);
      else missing.push(`${n} (${where.join("; ")})`);
    }
    deepStrictEqual(missing, [], `queried but not in the daemon's scrape (state ${state})`);

    // the state-only names: documented, and emitted once their state's sources exist
    const now = Math.floor(Date.now() / 1000);
    const enforcing = families(
      await renderMetrics({
        map: () => null,
        runtimeState: "ENFORCE",
        enforceCapable: true,
        emergency: null,
        events: null,
        unresolvedPaths: null,
        perfSloPath: `${e.dir}/no-perf-slo.json`,
        proof: {
          results: { file: { ok: true, last_unix: now - 1, detail: "denied" } },
          now,
          unenforcedRules: 0,
          verifiedRules: 1,
        },
      }, { detailed: true }),
    );
    for (const n of stateOnly) {
      ok(documented.has(n), `${n}: not documented in docs/telemetry.md`);
      ok(enforcing.has(n), `${n}: the renderer does not emit it in ${STATE_ONLY[n]}`);
      Deno.stderr.writeSync(
        new TextEncoder().encode(
          `  ${n}: not in this ${state} daemon's scrape; exists in ${STATE_ONLY[n]}; ` +
            `checked against the renderer\n`,
        ),
      );
    }
    // the list holds only names that really are state-only here
    for (const n of Object.keys(STATE_ONLY)) {
      ok(!scraped.has(n) || state === "ENFORCE", `${n} is scraped in ${state}: not state-only`);
    }
  } finally {
    await cleanupAgent(a, e);
  }
});

/** A group of /etc/group other than root's and nobody's: the log shipper's, for the test. */
function shipperGroup(): { name: string; gid: number } {
  for (const line of Deno.readTextFileSync("/etc/group").split("\n")) {
    const [name, , gid] = line.split(":");
    const n = Number(gid);
    if (name && /^\d+$/.test(gid ?? "") && n > 0 && n < 65534) return { name, gid: n };
  }
  throw new Error("no group in /etc/group besides root's and nobody's");
}

function hasSetpriv(): boolean {
  try {
    return Deno.statSync("/usr/bin/setpriv").isFile;
  } catch {
    return false;
  }
}

/** `cat path` as uid/gid 65534 (nobody), with `groups` as supplementary groups. */
async function readAsNobody(
  path: string,
  groups: number[],
): Promise<{ code: number; out: string }> {
  const args = ["--reuid=65534", "--regid=65534"];
  args.push(groups.length ? `--groups=${groups.join(",")}` : "--clear-groups");
  const r = await run("/usr/bin/setpriv", [...args, "cat", path]);
  return { code: r.code, out: r.stdout + r.stderr };
}

const SETPRIV = hasSetpriv();

Deno.test({
  name:
    "observability: --log-file-mode 0640 --log-file-group: the shipper's group reads the event " +
    "file, others do not, also after SIGHUP; real events carry what Fluent Bit and Vector read" +
    (SETPRIV ? "" : " (SKIPPED: no /usr/bin/setpriv (util-linux) to read as another user)"),
  ignore: !SETPRIV,
  fn: async () => {
    const e = agentEnv();
    const { denied, pol } = deniedFileAndPolicy(e.dir);
    const grp = shipperGroup();
    // the log directory: root's, the group may enter it, nobody else
    const logDir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-obs-log-" });
    Deno.chownSync(logDir, 0, grp.gid);
    Deno.chmodSync(logDir, 0o750);
    const file = `${logDir}/events.jsonl`;
    const lines = () =>
      Deno.readTextFileSync(file).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
    let a: Agent | null = null;
    try {
      a = new Agent([
        "--audit",
        "--policy",
        pol,
        "--log",
        `file:${file}`,
        "--log-file-mode",
        "0640",
        "--log-file-group",
        grp.name,
      ], e.env);
      await a.ready();
      let st = Deno.statSync(file);
      strictEqual(st.mode! & 0o7777, 0o640, "created 0640");
      strictEqual(st.gid, grp.gid, `created with group ${grp.name}`);
      for (let i = 0; i < 3; i++) Deno.readTextFileSync(denied);
      await waitUntil(
        () => lines().some((l) => l.type === "block"),
        "a block event in the file",
        15_000,
      );

      // a shipper in the group reads it without root; a user outside it does not
      const inGroup = await readAsNobody(file, [grp.gid]);
      strictEqual(inGroup.code, 0, inGroup.out);
      match(inGroup.out, /"type":"block"/);
      const outside = await readAsNobody(file, []);
      ok(outside.code !== 0, `a user outside ${grp.name} read the file:\n${outside.out}`);
      match(outside.out, /Permission denied/);

      // the fields and types the shipper configs name are in the real events
      const events = lines();
      const { types } = documentedEvents();
      for (const ev of events) ok(types.has(ev.type), `event type ${ev.type} is not documented`);
      const block = events.find((l) => l.type === "block");
      strictEqual(block.action, "AUDIT");
      ok(events.some((l) => l.type === "state_change"), "a state_change event");
      const fluent = Deno.readTextFileSync(`${OBS}/logging/fluent-bit.conf`);
      const fbKeys = [...fluent.matchAll(/^\s*Rule\s+\$(\w+)\s/gm)].map((m) => m[1]);
      ok(fbKeys.length > 0, "fluent-bit.conf names a field");
      for (const k of fbKeys) ok(k in block, `Fluent Bit reads $${k}: not in a real block event`);
      // the parsers' Time_Key: every real event has the time in the format they read
      for (const ev of events) {
        ok(
          /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/.test(ev.timestamp),
          `${ev.type}: ${ev.timestamp}`,
        );
      }
      const rewrite = new RegExp(/^\s*Rule\s+\$type\s+(\S+)/m.exec(fluent)![1]);
      ok(rewrite.test(block.type), "Fluent Bit's block tag takes the real block event");
      ok(!events.some((l) => l.type === "state_change" && rewrite.test(l.type)));
      const vector = parseYaml(Deno.readTextFileSync(`${OBS}/logging/vector.yaml`));
      const cond: string = Object.values(
        vector.transforms as Record<string, { condition?: string }>,
      )
        .find((t) => t.condition)!.condition!;
      ok(cond.includes(`"${block.type}"`), "Vector's block filter takes the real block event");
      ok(cond.includes(".type") && "type" in block);

      // logrotate: move it away and create a wider file, then SIGHUP
      Deno.renameSync(file, `${file}.1`);
      Deno.writeTextFileSync(file, "", { mode: 0o644 });
      Deno.chmodSync(file, 0o644);
      a.proc.kill("SIGHUP");
      await a.waitFor(() => a!.err.includes("SIGHUP"), "the SIGHUP log line", 10_000);
      Deno.readTextFileSync(denied); // the next write reopens
      await waitUntil(
        () => lines().some((l) => l.type === "block"),
        "a block event in the new file",
        15_000,
      );
      st = Deno.statSync(file);
      strictEqual(st.mode! & 0o7777, 0o640, "narrowed to 0640 on reopen");
      strictEqual(st.gid, grp.gid, "given the group on reopen");
      await a.waitFor(
        () => a!.err.includes(`event file ${file}: mode 0644 -> 0640, group 0 -> ${grp.gid}`),
        "the agent's notice of the change",
        5_000,
      );
      strictEqual(Deno.statSync(`${file}.1`).mode! & 0o7777, 0o640, "the rotated file kept it");
      strictEqual((await readAsNobody(file, [grp.gid])).code, 0);
    } finally {
      await cleanupAgent(a, e);
      Deno.removeSync(logDir, { recursive: true });
    }
  },
});

/**
 * `aegisbpf run ARGS` under setpriv without CAP_CHOWN (the systemd unit's
 * bounding set has none, docs/install.md); stopped once it has started.
 * Its exit status (null when it started and was stopped) and its stderr.
 */
async function runWithoutChown(
  args: string[],
  env: Record<string, string>,
): Promise<{ started: boolean; code: number; err: string }> {
  const p = new Deno.Command("/usr/bin/setpriv", {
    args: ["--bounding-set", "-chown", AGENT, "run", ...args],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let err = "";
  let started = false;
  const guard = setTimeout(() => p.kill("SIGKILL"), 60_000);
  for await (const t of p.stderr.pipeThrough(new TextDecoderStream())) {
    err += t;
    if (!started && err.includes("agent started")) {
      started = true;
      p.kill("SIGTERM");
    }
  }
  const st = await p.status;
  clearTimeout(guard);
  return { started, code: st.code, err };
}

Deno.test({
  name:
    "observability: without CAP_CHOWN (the unit's set), a setgid log directory gives the event " +
    "file its group; a plain one refuses the start with the remedy" +
    (SETPRIV ? "" : " (SKIPPED: no /usr/bin/setpriv (util-linux))"),
  ignore: !SETPRIV,
  fn: async () => {
    const e = agentEnv();
    const grp = shipperGroup();
    const dirs: string[] = [];
    try {
      for (const setgid of [true, false]) {
        const logDir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-obs-nochown-" });
        dirs.push(logDir);
        Deno.chownSync(logDir, 0, grp.gid);
        Deno.chmodSync(logDir, setgid ? 0o2750 : 0o750);
        const file = `${logDir}/events.jsonl`;
        const r = await runWithoutChown([
          "--audit",
          "--log",
          `file:${file}`,
          "--log-file-mode",
          "0640",
          "--log-file-group",
          grp.name,
        ], e.env);
        if (setgid) {
          ok(r.started, `did not start in a setgid directory:\n${r.err}`);
          const st = Deno.statSync(file);
          strictEqual(st.gid, grp.gid, "the group came from the setgid directory");
          strictEqual(st.mode! & 0o7777, 0o640);
        } else {
          ok(!r.started && r.code !== 0, `started without giving the group:\n${r.err}`);
          match(r.err, /without CAP_CHOWN .*chmod 2750 DIR.*SupplementaryGroups=GROUP/s);
        }
        await run(AGENT, ["uninstall"], e.env);
      }
    } finally {
      await cleanupAgent(null, e);
      for (const d of dirs) Deno.removeSync(d, { recursive: true });
    }
  },
});

Deno.test("observability: a world-writable event file mode or an unknown group refuses the start, naming the option", async () => {
  const e = agentEnv();
  try {
    const file = `${e.dir}/events.jsonl`;
    for (
      const [args, what] of [
        [["--log-file-mode", "0666"], /--log-file-mode "0666": world-writable is refused/],
        [["--log-file-mode", "0644"], /--log-file-mode "0644": others may not read/],
        [
          ["--log-file-group", "aegis-no-such-group"],
          /--log-file-group "aegis-no-such-group": no such group/,
        ],
        [["--log-file-group", "0"], /gives the group nothing; add --log-file-mode 0640/],
      ] as const
    ) {
      const r = await run(AGENT, ["run", "--audit", "--log", `file:${file}`, ...args], e.env);
      ok(r.code !== 0, `${args.join(" ")} started`);
      match(r.stderr, what);
      ok(!(await exists(file)), `${args.join(" ")}: the event file was created`);
    }
  } finally {
    await cleanupAgent(null, e);
  }
});

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}
