// deno-lint-ignore-file no-console -- a benchmark: its output is for the person running it
// bench/cli: what a short CLI command costs beside a bare `deno eval` (the
// floor: starting the runtime and doing nothing), interleaved in one run.
// Wall time of each command as a whole process (spawn to exit, as seen from
// here: the same spawn overhead is in every row) and its peak RSS, from GNU
// time (`/usr/bin/time -f %M`). Prints the median, min..max and the
// ratio of medians to the floor; never fails on timing.
//
//   deno run -A bench/cli/cli_bench.ts [rounds]
//
// The commands run through scripts/aegisbpf (`deno run` of src/main.ts with the
// shipped permissions), the form tests use; a `deno compile` binary was not
// measured (no denort can be had on the development machine).

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const deno = Deno.env.get("DENO") ?? `${root}/.tools/bin/deno`;
const launcher = `${root}/scripts/aegisbpf`;
const rounds = Number(Deno.args[0] ?? 7);
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`cli_bench: rounds must be a positive integer, got "${Deno.args[0]}"`);
  Deno.exit(2);
}
try {
  Deno.statSync("/usr/bin/time");
} catch {
  console.error("cli_bench: needs GNU time at /usr/bin/time (apt package 'time')");
  Deno.exit(1);
}

interface Case {
  name: string;
  argv: string[];
  /** runs against the daemon started below (root only) */
  daemon?: boolean;
}
// health with no daemon running answers from local probes (exit code not
// judged: a host without BPF LSM says so and exits 1). With a daemon running
// (as root: `run --audit` on private paths, started once before the rounds)
// `health` is one GET to it: what a readiness probe that execs the CLI runs;
// `curl /health` beside it is the probe docs/http.md recommends.
const cases: Case[] = [
  { name: 'floor: deno eval ""', argv: [deno, "eval", ""] },
  { name: "aegisbpf --help", argv: [launcher, "--help"] },
  { name: "aegisbpf --version", argv: [launcher, "--version"] },
  { name: "aegisbpf version", argv: [launcher, "version"] },
  { name: "aegisbpf health --json", argv: [launcher, "health", "--json"] },
  { name: "aegisbpf policy lint (1 rule)", argv: [launcher, "policy", "lint", "POLICY"] },
  {
    name: "aegisbpf health --json (daemon running)",
    argv: [launcher, "health", "--json"],
    daemon: true,
  },
  {
    // a global option in front: the argument parser and the command file load (the path
    // every `health` took before cli/readiness.ts)
    name: "aegisbpf --log-level warning health --json (daemon running, full CLI)",
    argv: [launcher, "--log-level", "warning", "health", "--json"],
    daemon: true,
  },
  { name: "curl /health (daemon running)", argv: ["curl", "-sf", "URL"], daemon: true },
];

const scratch = await Deno.makeTempDir({ prefix: "aegis-cli-bench-" });
const policyFile = `${scratch}/policy.conf`;
await Deno.writeTextFile(policyFile, "version=1\n\n[deny_path]\n/etc/shadow\n");
const localEnv = { AEGIS_STATE_DIR: scratch, AEGIS_RUNTIME_DIR: scratch };
const daemon = Deno.uid() === 0 ? await startDaemon() : null;
if (daemon === null) {
  console.error("cli_bench: not root: the rows with a daemon running are left out");
  cases.splice(0, cases.length, ...cases.filter((c) => !c.daemon));
}

/** `run --audit` on private paths and a free port; resolves once it serves /health. */
async function startDaemon(): Promise<
  { proc: Deno.ChildProcess; env: Record<string, string>; url: string }
> {
  const dir = `${scratch}/daemon`;
  await Deno.mkdir(`${dir}/state`, { recursive: true, mode: 0o700 });
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const env = {
    AEGIS_STATE_DIR: `${dir}/state`,
    AEGIS_CAPABILITIES_REPORT_PATH: `${dir}/state/capabilities.json`,
    AEGIS_RUNTIME_DIR: `${dir}/run`,
    AEGIS_CONTROL_SOCKET: `${dir}/run/control.sock`,
    AEGIS_HTTP_LISTEN: `127.0.0.1:${port}`,
    AEGIS_PIN_ROOT: `/sys/fs/bpf/aegis-cli-bench-${Deno.pid}`,
  };
  const proc = new Deno.Command(launcher, {
    args: ["run", "--audit"],
    env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  const url = `http://127.0.0.1:${port}/health`;
  const end = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(url);
      await r.body?.cancel();
      break;
    } catch {
      if (Date.now() > end) throw new Error("cli_bench: the daemon did not serve /health in 60 s");
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { proc, env, url };
}

async function measure(c: Case): Promise<{ ms: number; rssKiB: number }> {
  const args = c.argv.map((a) => a === "POLICY" ? policyFile : a === "URL" ? daemon!.url : a);
  const t0 = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "AEGIS_TIME %e %M", ...args],
    stdout: "null",
    stderr: "piped",
    env: c.daemon ? daemon!.env : localEnv,
  }).output();
  const ms = performance.now() - t0;
  const line = new TextDecoder().decode(out.stderr).split("\n").find((l) =>
    l.startsWith("AEGIS_TIME ")
  );
  if (!line) throw new Error(`cli_bench: no timing from ${args.join(" ")}`);
  const kib = line.split(" ")[2];
  return { ms, rssKiB: Number(kib) };
}

const samples = new Map<string, { ms: number[]; rss: number[] }>();
for (const c of cases) samples.set(c.name, { ms: [], rss: [] });
// one warm-up of each (module cache, page cache), not counted
for (const c of cases) await measure(c);
for (let r = 0; r < rounds; r++) {
  for (const c of cases) {
    const m = await measure(c);
    samples.get(c.name)!.ms.push(m.ms);
    samples.get(c.name)!.rss.push(m.rssKiB);
  }
}
if (daemon !== null) {
  daemon.proc.kill("SIGTERM");
  await daemon.proc.status;
  await Deno.remove(daemon.env.AEGIS_PIN_ROOT, { recursive: true }).catch(() => {});
}
await Deno.remove(scratch, { recursive: true });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const floor = samples.get(cases[0].name)!;
const floorMs = median(floor.ms);
const floorRss = median(floor.rss);
console.log(`bench/cli: ${rounds} interleaved rounds`);
console.log(
  "| command | wall ms median | min..max | ×floor | peak RSS MiB median | ×floor |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const c of cases) {
  const s = samples.get(c.name)!;
  const ms = median(s.ms);
  const rss = median(s.rss);
  console.log(
    `| ${c.name} | ${ms.toFixed(0)} | ${Math.min(...s.ms).toFixed(0)}..${
      Math.max(...s.ms).toFixed(0)
    } | ${(ms / floorMs).toFixed(2)} | ${(rss / 1024).toFixed(1)} | ${
      (rss / floorRss).toFixed(2)
    } |`,
  );
}
