/**
 * bench/replay: `aegisbpf simulate` over 1,000,000 recorded events (plain
 * and gzip), beside a floor that reads the same lines the same way and only
 * JSON-parses them. Each measurement runs in its own process, so its peak
 * RSS (VmHWM of /proc/self/status) is its own; floor and simulate
 * alternate in every round, in one run.
 *
 *   deno run -A bench/replay/simulate_bench.ts [EVENTS] [ROUNDS]
 *
 * The events: a mix like an audit-mode recording — file blocks (half of
 * them on inodes the candidate rules), network blocks (ip, cidr, port,
 * ip:port), exec events, a few kernel blocks and state changes — against
 * a candidate with 1,000 deny_inode, 200 deny_ip, 50 deny_cidr and 100
 * deny_port rules. A benchmark: it prints, it never fails on timing. No
 * root needed.
 *
 * @module
 */
import { writeStdout } from "../../src/log.ts";
import { eventFromLine } from "../../src/policy/event_input.ts";
import { parsePolicy } from "../../src/policy/parse.ts";
import { ruleSetFromPolicy } from "../../src/policy/ruleset.ts";
import { replayStream, Simulator } from "../../src/policy/simulate.ts";
import { maybeGunzip, readLines } from "../../src/util/lines.ts";
import { MAX_EVENT_LINE } from "../../src/policy/event_input.ts";

const PROC = '"pid":4242,"tid":4243,"ppid":1,"uid":1000,"start_time":"123456789000",' +
  '"exec_id":"123456789000-4242","cgid":"9876","cgroup_path":"/user.slice/user-1000.slice/' +
  'session-3.scope","comm":"worker"';

function eventLine(i: number): string {
  const k = `"ktime_ns":"${1_000_000_000 + i * 1000}"`;
  switch (i % 10) {
    case 0:
    case 1:
    case 2:
      return `{"type":"block",${k},${PROC},"action":"AUDIT","hook":"file_open","ino":"${
        1_000_000 + (i % 2000)
      }","dev":2049,"path":"/srv/data/file-${i % 2000}","rule_id":${3 + (i % 1000)}}`;
    case 3:
    case 4:
      return `{"type":"net_connect_block",${k},${PROC},"action":"AUDIT","hook":"socket_connect",` +
        `"family":"ipv4","addr":"10.${i % 250}.${(i >> 8) % 250}.${i % 7}","port":${
          4000 + (i % 300)
        },"protocol":"tcp","rule_type":"cidr","rule_id":${1300 + (i % 50)}}`;
    case 5:
      return `{"type":"net_bind_block",${k},${PROC},"action":"BLOCK","hook":"socket_bind",` +
        `"family":"ipv6","addr":"2001:db8:0:0:0:0:0:${(i % 4096).toString(16)}","port":${
          4000 + (i % 200)
        },"protocol":"udp","rule_type":"port","rule_id":1400}`;
    case 6:
    case 7:
    case 8:
      return `{"type":"exec",${k},${PROC.replace('"worker"', `"job-${i % 50}"`)}}`;
    default:
      return i % 20 === 9
        ? `{"type":"kernel_ptrace_block",${k},${PROC},"action":"AUDIT","hook":` +
          `"ptrace_access_check","target_pid":1,"detail":2,"rule_type":"ptrace","rule_id":0}`
        : `{"type":"state_change",${k},"state":"ENFORCE","reason":"bench"}`;
  }
}

function candidate(): string {
  const l = ["version=6", "[deny_inode]"];
  for (let i = 0; i < 1000; i++) l.push(`2049:${1_000_000 + i}`);
  l.push("[deny_ip]");
  for (let i = 0; i < 200; i++) l.push(`192.0.2.${i}`);
  l.push("[deny_cidr]");
  for (let i = 0; i < 50; i++) l.push(`10.${i}.0.0/16`);
  l.push("[deny_port]");
  for (let i = 0; i < 100; i++) l.push(`${4000 + i}:any:both`);
  l.push("[deny_comm]", "job-7", "[deny_ptrace]");
  return l.join("\n") + "\n";
}

function peakRssKiB(): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync("/proc/self/status"));
  return m ? Number(m[1]) : -1;
}

async function openFile(path: string): Promise<ReadableStream<Uint8Array>> {
  return (await Deno.open(path)).readable;
}

/** Child: one measurement, prints "events seconds peakKiB". */
async function child(mode: string, file: string, policyFile: string): Promise<void> {
  const t0 = performance.now();
  let n = 0;
  if (mode === "floor") {
    const { stream } = await maybeGunzip(await openFile(file));
    let sink = 0;
    for await (const l of readLines(stream, MAX_EVENT_LINE)) {
      if ("error" in l) continue;
      const v = JSON.parse(l.text) as { type?: string };
      if (v.type !== undefined) sink++;
      n++;
    }
    if (sink < 0) throw new Error("unreachable");
  } else if (mode === "parse") {
    const { stream } = await maybeGunzip(await openFile(file));
    for await (const l of readLines(stream, MAX_EVENT_LINE)) {
      if (!("error" in l)) eventFromLine(l.text, l.line);
      n++;
    }
  } else {
    const p = parsePolicy(Deno.readTextFileSync(policyFile), policyFile);
    const built = ruleSetFromPolicy(p.policy!, policyFile, {
      resolvePath: (path) => ({ status: "unresolved", path, reason: "bench" }),
      resolveCgroup: () => null,
    });
    const sim = new Simulator(built.rules);
    const r = await replayStream(await openFile(file), sim, null);
    if (r.input_error) throw new Error(r.input_error);
    n = sim.report().events;
  }
  const s = (performance.now() - t0) / 1000;
  writeStdout(`${n} ${s} ${peakRssKiB()}\n`);
}

async function measure(mode: string, file: string, policyFile: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--child", mode, file, policyFile],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`${mode} child failed`);
  const [n, s, kib] = new TextDecoder().decode(out.stdout).trim().split(" ").map(Number);
  return { n, s, kib };
}

async function main(): Promise<void> {
  const events = Number(Deno.args[0] ?? "1000000");
  const rounds = Number(Deno.args[1] ?? "3");
  const dir = Deno.makeTempDirSync({ prefix: "aegis-bench-replay-" });
  try {
    const plain = `${dir}/events.jsonl`, gz = `${dir}/events.jsonl.gz`, pol = `${dir}/cand.conf`;
    Deno.writeTextFileSync(pol, candidate());
    const f = Deno.openSync(plain, { write: true, create: true, truncate: true });
    const enc = new TextEncoder();
    let batch: string[] = [];
    for (let i = 0; i < events; i++) {
      batch.push(eventLine(i));
      if (batch.length === 10000) {
        f.writeSync(enc.encode(batch.join("\n") + "\n"));
        batch = [];
      }
    }
    if (batch.length) f.writeSync(enc.encode(batch.join("\n") + "\n"));
    f.close();
    const z = await Deno.open(gz, { write: true, create: true, truncate: true });
    await (await Deno.open(plain)).readable.pipeThrough(new CompressionStream("gzip")).pipeTo(
      z.writable,
    );
    const size = (p: string) => (Deno.statSync(p).size / 1048576).toFixed(1);
    writeStdout(
      `bench/replay: ${events} events (${size(plain)} MiB, gzip ${size(gz)} MiB), ` +
        `${rounds} round(s), each measurement in its own process\n`,
    );
    const modes = [
      ["floor", plain, "read lines + JSON.parse (floor)"],
      ["parse", plain, "read + parse + validate (event input)"],
      ["simulate", plain, "simulate (read, validate, decide, fold)"],
      ["floor", gz, "gzip: read lines + JSON.parse (floor)"],
      ["simulate", gz, "gzip: simulate"],
    ] as const;
    const res = new Map<string, { n: number; s: number; kib: number }[]>();
    for (let r = 0; r < rounds; r++) {
      for (const [mode, file, label] of modes) {
        const m = await measure(mode, file, pol);
        const l = res.get(label) ?? [];
        l.push(m);
        res.set(label, l);
      }
    }
    const median = (xs: number[]) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    writeStdout(
      `${"measurement".padEnd(42)} ${"events/s (median)".padStart(18)} ${"s".padStart(7)} ${
        "peak RSS MiB (max)".padStart(19)
      }\n`,
    );
    for (const [label, ms] of res) {
      const s = median(ms.map((m) => m.s));
      const rate = ms[0].n / s;
      const kib = Math.max(...ms.map((m) => m.kib));
      writeStdout(
        `${label.padEnd(42)} ${Math.round(rate).toString().padStart(18)} ${
          s.toFixed(2).padStart(7)
        } ${(kib / 1024).toFixed(1).padStart(19)}\n`,
      );
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

if (Deno.args[0] === "--child") await child(Deno.args[1], Deno.args[2], Deno.args[3]);
else await main();
