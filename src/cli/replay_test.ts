/**
 * `explain` and `simulate` (explain.ts, simulate.ts) through the command parser with injected output,
 * stdin and environment (no agent needed): text and --json (parsed with
 * the shipped schemas), the applied policy and live rules, gzip input,
 * per-event JSON lines, and the errors (usage, unreadable and hostile input).
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { Command, CommanderError } from "@commander-js/extra-typings";
import { AegisError } from "../errors.ts";
import { FIXTURE_ENV } from "../policy/decide_testing.ts";
import { LIVE_RULE_ID_BASE } from "../policy/live.ts";
import { addExplainCommand } from "./explain.ts";
import type { ReplayDeps } from "./replay_common.ts";
import { addSimulateCommand } from "./simulate.ts";
import { ExplainJson, SimulateJson } from "./json_output.ts";

const PROC = { pid: 1, tid: 1, ppid: 0, uid: 0, start_time: "1", exec_id: "1-1", cgid: "50" };
const BLOCK = {
  type: "block",
  ...PROC,
  cgroup_path: "/user.slice/s.scope",
  comm: "cat",
  action: "BLOCK",
  hook: "file_open",
  ino: "100",
  dev: 2049,
  path: "/usr/bin/nc",
  rule_id: 3,
};
const POLICY = "version=6\n[deny_path]\n/usr/bin/nc\n[deny_port]\n4444:tcp\n";

async function run(
  dir: string,
  args: string[],
  stdin = "",
): Promise<{ out: string; err: unknown }> {
  let out = "";
  const program = new Command().exitOverride();
  program.configureOutput({ writeOut: () => {}, writeErr: () => {} });
  const deps: ReplayDeps = {
    env: FIXTURE_ENV,
    stateDir: `${dir}/state`,
    ownerUid: Deno.statSync(dir).uid ?? 0,
    now: 1000,
    write: (s) => (out += s),
    stdin: () => new Blob([stdin]).stream(),
  };
  addExplainCommand(program, undefined, deps);
  addSimulateCommand(program, undefined, deps);
  try {
    await program.parseAsync(args, { from: "user" });
    return { out, err: null };
  } catch (e) {
    return { out, err: e };
  }
}

async function sandbox(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-cli-explain-" });
  Deno.mkdirSync(`${dir}/state`, { mode: 0o700 });
  Deno.writeTextFileSync(`${dir}/p.conf`, POLICY);
  try {
    await fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

function code(e: unknown): string | null {
  return e instanceof AegisError ? e.code : e instanceof CommanderError ? e.code : null;
}

Deno.test("explain --policy: text names the rule, the chain, enforce and audit", async () => {
  await sandbox(async (dir) => {
    Deno.writeTextFileSync(`${dir}/e.json`, JSON.stringify(BLOCK, null, 2));
    const r = await run(dir, ["explain", `${dir}/e.json`, "--policy", `${dir}/p.conf`]);
    strictEqual(r.err, null);
    match(r.out, /rule in the event: .*p\.conf:3 \[deny_path\] \/usr\/bin\/nc/);
    match(r.out, /decision now: block by .*p\.conf:3 \[deny_path\]/);
    match(r.out, /1\. deny\/protect inode +match/);
    match(r.out, /enforce mode: denied \(EPERM\)/);
    match(r.out, /audit mode: +allowed, reported/);
  });
});

Deno.test("explain --json from stdin: the shipped schema parses it", async () => {
  await sandbox(async (dir) => {
    const r = await run(
      dir,
      ["explain", "-", "--policy", `${dir}/p.conf`, "--json"],
      JSON.stringify({ ...BLOCK, ino: 100, cgid: 50 }) + "\n",
    );
    strictEqual(r.err, null);
    const j = ExplainJson.parse(JSON.parse(r.out));
    deepStrictEqual([j.decision.outcome, j.agrees, j.recorded_rule.exists], ["block", true, true]);
  });
});

Deno.test("explain: against the applied policy and live rules; a rule that no longer exists", async () => {
  await sandbox(async (dir) => {
    const state = `${dir}/state`;
    Deno.writeTextFileSync(`${state}/policy.applied`, "version=6\n[deny_port]\n4444\n");
    Deno.writeTextFileSync(
      `${state}/live_rules.json`,
      JSON.stringify({
        version: 1,
        next_id: LIVE_RULE_ID_BASE + 1,
        rules: [{
          id: LIVE_RULE_ID_BASE,
          map: "aegis_deny_inode",
          spec: { kind: "path", path: "/usr/bin/nc", dev: 2049, ino: "100" },
          added: 0,
          expires: 61_000,
          shadows: null,
        }],
      }),
      { mode: 0o600 },
    );
    Deno.writeTextFileSync(`${dir}/e.json`, JSON.stringify(BLOCK));
    const r = await run(dir, ["explain", `${dir}/e.json`, "--json"]);
    strictEqual(r.err, null);
    const j = ExplainJson.parse(JSON.parse(r.out));
    strictEqual(j.rules.live_rules, 1);
    strictEqual(j.recorded_rule.exists, false);
    match(
      j.recorded_rule.message,
      /rule 3 is now .*\[deny_port\] 4444:any:egress, not a file rule/,
    );
    deepStrictEqual([j.decision.outcome, j.decision.rule?.origin, j.decision.rule?.id], [
      "block",
      "live",
      LIVE_RULE_ID_BASE,
    ]);
    Deno.writeTextFileSync(
      `${dir}/l.json`,
      JSON.stringify({ ...BLOCK, rule_id: LIVE_RULE_ID_BASE }),
    );
    const l = await run(dir, ["explain", `${dir}/l.json`]);
    match(l.out, /live rule 2147483648: block \/usr\/bin\/nc \(expires in 60 s\)/);
    Deno.removeSync(`${state}/policy.applied`);
    strictEqual(code((await run(dir, ["explain", `${dir}/e.json`])).err), "NO_APPLIED_POLICY");
  });
});

Deno.test("explain: input errors are clear and coded", async () => {
  await sandbox(async (dir) => {
    const p = ["--policy", `${dir}/p.conf`];
    const e1 = await run(dir, ["explain", "-", ...p], "{nope");
    strictEqual(code(e1.err), "EVENT_INVALID");
    const e2 = await run(dir, ["explain", "-", ...p], '{"type":"state_change"}');
    strictEqual(code(e2.err), "EVENT_NOT_A_DECISION");
    const two = JSON.stringify(BLOCK) + "\n" + JSON.stringify(BLOCK) + "\n";
    const e3 = await run(dir, ["explain", "-", ...p], two);
    match((e3.err as Error).message, /holds 2 lines; explain takes one event/);
    const e4 = await run(dir, ["explain", "-", ...p], '{"type":"block","ino":"x"}');
    match((e4.err as Error).message, /field "action"|field "ino"/);
    const e5 = await run(dir, ["explain", dir, ...p]);
    strictEqual(code(e5.err), "USAGE");
    Deno.writeTextFileSync(`${dir}/bad.conf`, "version=9\n");
    const e6 = await run(
      dir,
      ["explain", "-", "--policy", `${dir}/bad.conf`],
      JSON.stringify(BLOCK),
    );
    strictEqual(code(e6.err), "POLICY_INVALID");
    strictEqual(code((await run(dir, ["explain"])).err), "commander.missingArgument");
  });
});

async function gzip(text: string): Promise<Uint8Array> {
  return new Uint8Array(
    await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
}

const LINES = [
  JSON.stringify(BLOCK),
  JSON.stringify({ ...BLOCK, ino: "555", path: "/tmp/x", action: "AUDIT", rule_id: 9 }),
  JSON.stringify({
    type: "net_connect_block",
    ...PROC,
    cgroup_path: "/u",
    comm: "nc",
    action: "AUDIT",
    hook: "socket_connect",
    family: "ipv4",
    addr: "192.0.2.1",
    port: 4444,
    protocol: "tcp",
    rule_type: "port",
    rule_id: 7,
  }),
  "",
  '{"type":"state_change","state":"ENFORCE"}',
  "garbage",
  '{"type":"__proto__"}',
].join("\n") + "\n";

Deno.test("simulate: gzip input, --json report (schema), counts and changes", async () => {
  await sandbox(async (dir) => {
    Deno.writeFileSync(`${dir}/ev.jsonl.gz`, await gzip(LINES));
    const r = await run(dir, [
      "simulate",
      `${dir}/ev.jsonl.gz`,
      "--policy",
      `${dir}/p.conf`,
      "--json",
    ]);
    strictEqual(r.err, null);
    const j = SimulateJson.parse(JSON.parse(r.out));
    strictEqual(j.gzip, true);
    strictEqual(j.events, 6);
    strictEqual(j.decided, 3);
    deepStrictEqual(j.by_surface.file, {
      would_block: 1,
      would_allow: 0,
      no_match: 1,
      undetermined: 0,
    });
    deepStrictEqual(j.by_surface.net.would_block, 1);
    deepStrictEqual(j.newly_allowed.count, 1);
    strictEqual(j.newly_allowed.examples[0].line, 2);
    deepStrictEqual([j.parse_errors.count, j.skipped.count, j.unknown_types.count], [1, 1, 1]);
    strictEqual(j.parse_errors.first[0].line, 6);
    deepStrictEqual(j.top_rules.map((h) => h.rule.line), [3, 5]);
  });
});

Deno.test("simulate --per-event: text lines, or JSON lines ending with the report", async () => {
  await sandbox(async (dir) => {
    const p = ["--policy", `${dir}/p.conf`];
    const t = await run(dir, ["simulate", "-", ...p, "--per-event"], LINES);
    strictEqual(t.err, null);
    match(t.out, /^line 1: file block .*p\.conf:3/m);
    match(t.out, /^line 2: file no_match \[newly_allowed\]/m);
    match(t.out, /^line 6: not replayed: invalid JSON/m);
    match(t.out, /^top rules by hits \(2 rule\(s\) hit\):/m);
    const j = await run(dir, ["simulate", "-", ...p, "--per-event", "--json"], LINES);
    const lines = j.out.trimEnd().split("\n").map((l) => JSON.parse(l));
    strictEqual(lines.length, 7);
    deepStrictEqual(lines[0].outcome, "block");
    deepStrictEqual(lines[1].change, "newly_allowed");
    ok(typeof lines[4].error === "string");
    SimulateJson.parse(lines[6]);
  });
});

Deno.test("simulate: usage errors, a directory, a damaged gzip stream", async () => {
  await sandbox(async (dir) => {
    strictEqual(
      code((await run(dir, ["simulate", "-"])).err),
      "commander.missingMandatoryOptionValue",
    );
    const top = await run(dir, ["simulate", "-", "--policy", `${dir}/p.conf`, "--top", "0"]);
    strictEqual(code(top.err), "USAGE");
    const d = await run(dir, ["simulate", dir, "--policy", `${dir}/p.conf`]);
    strictEqual(code(d.err), "USAGE");
    const gz = await gzip(LINES.repeat(50));
    Deno.writeFileSync(`${dir}/cut.gz`, gz.subarray(0, gz.length - 12));
    const saved = Deno.exitCode;
    try {
      const c = await run(dir, [
        "simulate",
        `${dir}/cut.gz`,
        "--policy",
        `${dir}/p.conf`,
        "--json",
      ]);
      strictEqual(c.err, null);
      const j = SimulateJson.parse(JSON.parse(c.out));
      ok(j.input_error !== null && /reading stopped after line \d+/.test(j.input_error));
      strictEqual(Deno.exitCode, 1);
    } finally {
      Deno.exitCode = saved;
    }
  });
});

/** A control character other than the newline that ends lines? */
function hasControl(s: string): boolean {
  return [...s].some((c) => (c < " " && c !== "\n") || c === "\x7f");
}

Deno.test("text output escapes control characters of hostile paths and comms", async () => {
  await sandbox(async (dir) => {
    const evil = { ...BLOCK, path: "/tmp/\x1b[2J\x1b]0;owned\x07", comm: "a\rb" };
    const r = await run(dir, ["explain", "-", "--policy", `${dir}/p.conf`], JSON.stringify(evil));
    strictEqual(r.err, null);
    ok(!hasControl(r.out), JSON.stringify(r.out));
    match(r.out, /\/tmp\/\\x1b\[2J\\x1b\]0;owned\\x07/);
    const s = await run(
      dir,
      ["simulate", "-", "--policy", `${dir}/p.conf`, "--per-event"],
      [
        JSON.stringify(evil),
        "\x1b[31m{",
      ].join("\n"),
    );
    ok(!hasControl(s.out), JSON.stringify(s.out));
  });
});
