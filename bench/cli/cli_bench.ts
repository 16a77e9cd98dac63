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
}
// health and capabilities with no daemon running: they answer from local
// probes (exit code not judged: a host without BPF LSM says so and exits 1).
const cases: Case[] = [
  { name: 'floor: deno eval ""', argv: [deno, "eval", ""] },
  { name: "aegisbpf --help", argv: [launcher, "--help"] },
  { name: "aegisbpf --version", argv: [launcher, "--version"] },
  { name: "aegisbpf version", argv: [launcher, "version"] },
  { name: "aegisbpf health --json", argv: [launcher, "health", "--json"] },
  { name: "aegisbpf policy lint (1 rule)", argv: [launcher, "policy", "lint", "POLICY"] },
];

const scratch = await Deno.makeTempDir({ prefix: "aegis-cli-bench-" });
const policyFile = `${scratch}/policy.conf`;
await Deno.writeTextFile(policyFile, "version=1\n\n[deny_path]\n/etc/shadow\n");

async function measure(argv: string[]): Promise<{ ms: number; rssKiB: number }> {
  const args = argv.map((a) => a === "POLICY" ? policyFile : a);
  const t0 = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "AEGIS_TIME %e %M", ...args],
    stdout: "null",
    stderr: "piped",
    env: { AEGIS_STATE_DIR: scratch, AEGIS_RUNTIME_DIR: scratch },
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
for (const c of cases) await measure(c.argv);
for (let r = 0; r < rounds; r++) {
  for (const c of cases) {
    const m = await measure(c.argv);
    samples.get(c.name)!.ms.push(m.ms);
    samples.get(c.name)!.rss.push(m.rssKiB);
  }
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
