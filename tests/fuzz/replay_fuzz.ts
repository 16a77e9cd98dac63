/**
 * Fuzz target "replay": what `aegisbpf simulate` and `explain` do with a
 * recording — the bounded line reader (with gzip detection), the event
 * input checks, the decision model and the simulator — on mutated event
 * lines fed in random chunks. Seeds: event lines of every kind, hostile
 * ones, the committed corpus, and a gzip of one.
 *
 * Oracle beyond "no exception": a plain (non-gzip) input is always read to
 * its end; the report adds up (every line is decided, a parse error, skipped
 * or of an unknown type; the surfaces' counts sum to the decided events);
 * every decision has a known outcome, a rule when it blocks, and its
 * explanation is built without an exception.
 *
 * @module
 */
import { explainEvent } from "../../src/policy/explain.ts";
import { parsePolicy } from "../../src/policy/parse.ts";
import { ruleSetFromPolicy } from "../../src/policy/ruleset.ts";
import { replayStream, Simulator, SURFACES } from "../../src/policy/simulate.ts";
import { assertClean, expect, fuzz, loadCorpus, type Rng } from "./lib.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const POLICY = `version=6
[deny_path]
/usr/bin/nc
[deny_inode]
2049:300
[protect_path]
/etc/shadow
[allow_cgroup]
/app.slice
cgid:77
[deny_ip]
10.1.2.3
[deny_cidr]
10.0.0.0/8
2001:db8::/32
[deny_ip_port]
[2001:db8::1]:443:tcp
[deny_port]
4444:udp:both
[deny_comm]
xmrig
[deny_bpf]
[cgroup_deny_inode]
/app.slice 2049:100
[cgroup_deny_ip]
cgid:50 192.0.2.1
[cgroup_deny_port]
/app.slice 22:tcp:egress
`;

const RULES = (() => {
  const p = parsePolicy(POLICY, "fuzz.conf");
  if (!p.policy) throw new Error(JSON.stringify(p.errors));
  return ruleSetFromPolicy(p.policy, "fuzz.conf", {
    resolvePath: (path) =>
      path === "/usr/bin/nc"
        ? { status: "resolved", path, canonical: path, dev: 2049, ino: 100 } as never
        : { status: "unresolved", path, reason: "fuzz" },
    resolveCgroup: (path) => path === "/app.slice" ? 88n : null,
  }).rules;
})();

const OUTCOMES = new Set(["block", "allow", "no_match", "undetermined"]);

/** The input in random chunks. */
function chunked(rng: Rng, b: Uint8Array): ReadableStream<Uint8Array> {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < b.length;) {
    const n = 1 + rng.int(rng.oneIn(3) ? 8 : 4096);
    parts.push(b.slice(at, at + n));
    at += n;
  }
  return new ReadableStream({
    start(c) {
      for (const p of parts) c.enqueue(p);
      c.close();
    },
  });
}

async function runReplay(input: Uint8Array, rng: Rng): Promise<string> {
  const sim = new Simulator(RULES, { top: 3, examples: 2 });
  let perEvent = 0;
  const r = await replayStream(chunked(rng, input), sim, (_line, res, err, ev) => {
    perEvent++;
    if (!res) {
      expect(typeof err === "string" && err.length > 0, "a problem without a message");
      return;
    }
    const d = res.decision;
    expect(OUTCOMES.has(d.outcome), `outcome ${d.outcome}`);
    expect(d.outcome !== "undetermined" || d.unknown.length > 0, "undetermined without a fact");
    if (ev) explainEvent(RULES, ev, 0);
  });
  const gzip = input.length >= 2 && input[0] === 0x1f && input[1] === 0x8b;
  expect(gzip || r.input_error === null, `plain input not read to its end: ${r.input_error}`);
  const p = sim.report();
  const sum = p.decided + p.parse_errors.count + p.skipped.count + p.unknown_types.count;
  expect(p.events === sum, `events ${p.events} != ${sum}`);
  expect(perEvent === p.events, `per-event callbacks ${perEvent} != events ${p.events}`);
  let surfaces = 0;
  for (const s of SURFACES) {
    const c = p.by_surface[s];
    surfaces += c.would_block + c.would_allow + c.no_match + c.undetermined;
  }
  expect(surfaces === p.decided, `surface counts ${surfaces} != decided ${p.decided}`);
  JSON.stringify(p);
  if (r.input_error) return "input_error";
  return p.decided > 0 ? "decided" : p.parse_errors.count > 0 ? "parse_error" : "other";
}

const VALUES = [
  "0",
  "-1",
  "1e400",
  "18446744073709551616",
  "9007199254740993",
  '"__proto__"',
  '"constructor"',
  "null",
  "true",
  "{}",
  "[]",
  '"' + "a".repeat(5000) + '"',
  '"::ffff:10.1.2.3"',
  '"2001:db8::1"',
  '"/usr/bin/nc"',
  '"/app.slice"',
  '"bprm_check_security"',
  '"AUDIT"',
  '"net_bind_block"',
  '"kernel_ptrace_block"',
  '"exec"',
];

/** Replace one JSON value of one line by a dictionary value, or duplicate/cut lines. */
function mutateLines(rng: Rng, input: Uint8Array): Uint8Array {
  const lines = dec.decode(input).split("\n");
  const i = rng.int(lines.length);
  const l = lines[i];
  const spans = [...l.matchAll(/:("(?:[^"\\]|\\.)*"|-?[\d.e+]+|true|false|null)/g)];
  if (spans.length > 0 && !rng.oneIn(5)) {
    const m = rng.pick(spans);
    const at = m.index! + 1;
    lines[i] = l.slice(0, at) + rng.pick(VALUES) + l.slice(at + m[1].length);
  } else if (rng.oneIn(2)) {
    lines.splice(i, 0, l.repeat(1 + rng.int(30)));
  } else {
    lines[i] = l.slice(0, rng.int(l.length + 1));
  }
  return enc.encode(lines.join(rng.oneIn(4) ? "\r\n" : "\n"));
}

Deno.test("fuzz replay: mutated recordings never crash the reader, checks or decision model", async () => {
  const corpus = loadCorpus("replay").map((c) => c.bytes);
  const gz = new Uint8Array(
    await new Response(
      new Blob([corpus[0] as BlobPart]).stream().pipeThrough(new CompressionStream("gzip")),
    ).arrayBuffer(),
  );
  const r = await fuzz({
    target: "replay",
    seeds: [...corpus, gz, enc.encode("x".repeat(70_000) + "\n{}\n")],
    run: runReplay,
    mutate: mutateLines,
    maxInput: 256 * 1024,
  });
  assertClean(r);
});
