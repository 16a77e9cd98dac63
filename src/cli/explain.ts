/**
 * `aegisbpf explain EVENT.json|-` and `aegisbpf simulate EVENTS.jsonl|-
 * --policy CANDIDATE`: a recorded block event explained against the
 * applied policy and live rules (or a policy file), and recorded events
 * replayed against a candidate policy (docs/operations.md). The logic is
 * in src/policy/{decide,explain,simulate}.ts; this file reads the inputs,
 * loads the rules and prints.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { aegisPaths } from "../contracts.ts";
import { AegisError, UsageError } from "../errors.ts";
import { writeStderr, writeStdout } from "../log.ts";
import type { Decision } from "../policy/decide.ts";
import {
  eventFromLine,
  MAX_EVENT_LINE,
  quoteBounded,
  type ReplayEvent,
} from "../policy/event_input.ts";
import { explainEvent, type Explanation } from "../policy/explain.ts";
import { hostCompileEnv } from "../policy/host_env.ts";
import { LiveRules } from "../policy/live.ts";
import type { PolicyIssue } from "../policy/model.ts";
import { MAX_FILE_BYTES, parsePolicy } from "../policy/parse.ts";
import type { RuleRef, UnresolvedRule } from "../policy/ruleset.ts";
import { type RuleSet, ruleSetFromPolicy, withLiveRules } from "../policy/ruleset.ts";
import { type SimulationReport, Simulator, SURFACES } from "../policy/simulate.ts";
import type { CompileEnv } from "../policy/compile.ts";
import { maybeGunzip, readLines } from "../util/lines.ts";
import { FileReadError, readFileCapped } from "../util/read_file.ts";

/**
 * Text for a terminal: control characters (an event's path, comm or cgroup
 * may hold an escape sequence; a parse error quotes the input) become \xNN.
 * JSON output needs no such care (JSON.stringify escapes them).
 */
export function printable(s: string): string {
  return s.replace(
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f-\x9f]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** Largest single event `explain` reads (one event; a pretty-printed one is a few KiB). */
export const MAX_EXPLAIN_BYTES = 1024 * 1024;

/** A policy with errors (code POLICY_INVALID, every issue in `details`). */
class PolicyInvalidError extends AegisError {
  readonly details: { errors: PolicyIssue[]; warnings: PolicyIssue[] };
  constructor(file: string, errors: PolicyIssue[], warnings: PolicyIssue[]) {
    super("POLICY_INVALID", `${file}: ${errors.length} error(s) in the policy`);
    this.details = { errors, warnings };
  }
}

/** What the rules were loaded from, for the output. */
export interface RulesSource {
  policy: string | null;
  live_rules: number;
  unresolved: { line: number | null; section: string; what: string; reason: string }[];
}

/** Where explain and simulate get their environment (tests replace it). */
export interface ReplayDeps {
  env?: CompileEnv;
  stateDir?: string;
  now?: number;
  /** stdout (default writeStdout) */
  write?: (text: string) => void;
  /** who must own live_rules.json (default 0, root) */
  ownerUid?: number;
  /** what "-" reads (default Deno.stdin.readable) */
  stdin?: () => ReadableStream<Uint8Array>;
}

/** Parse a policy file (bounded read) into a rule set. */
export function loadPolicyRules(
  file: string,
  env: CompileEnv,
  json: boolean,
): { rules: RuleSet; unresolved: UnresolvedRule[] } {
  const bytes = readFileCapped(file, {
    maxBytes: MAX_FILE_BYTES,
    what: "policy file",
    code: "USAGE",
    tooLargeCode: "POLICY_INVALID",
  });
  const r = parsePolicy(bytes, file);
  if (r.errors.length > 0 || !r.policy) {
    if (!json) {
      for (const i of r.errors) writeStderr(`${i.file}:${i.line}: error: ${i.message}\n`);
    }
    throw new PolicyInvalidError(file, r.errors, r.warnings);
  }
  return ruleSetFromPolicy(r.policy, file, env);
}

/** The applied policy and the live rules of the state directory. */
export function loadAppliedRules(
  stateDir: string,
  env: CompileEnv,
  json: boolean,
  ownerUid = 0,
): { rules: RuleSet; unresolved: UnresolvedRule[] } {
  const file = `${stateDir}/policy.applied`;
  let built;
  try {
    built = loadPolicyRules(file, env, json);
  } catch (e) {
    if (e instanceof FileReadError && e.cause instanceof Deno.errors.NotFound) {
      throw new AegisError(
        "NO_APPLIED_POLICY",
        `no applied policy at ${file} (nothing was applied on this host, or AEGIS_STATE_DIR ` +
          "points elsewhere): give the policy to explain against with --policy FILE",
      );
    }
    throw e;
  }
  const live = new LiveRules({
    maps: () => {
      throw new Error("explain reads the live-rule store only");
    },
    storePath: `${stateDir}/live_rules.json`,
    resolveCgroup: env.resolveCgroup,
    ownerUid,
  });
  withLiveRules(built.rules, live.rules());
  return built;
}

function sourceOf(rs: RuleSet, unresolved: UnresolvedRule[]): RulesSource {
  return {
    policy: rs.source.policy,
    live_rules: rs.source.live,
    unresolved: unresolved.map((u) => ({
      line: u.ref.line,
      section: u.ref.section,
      what: u.ref.text,
      reason: u.reason,
    })),
  };
}

/** Read all of stdin or a file, at most `max` bytes. */
async function readInput(
  file: string,
  max: number,
  stdin: () => ReadableStream<Uint8Array>,
): Promise<Uint8Array> {
  if (file !== "-") {
    return readFileCapped(file, { maxBytes: max, what: "event file", code: "USAGE" });
  }
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of stdin()) {
    n += c.length;
    if (n > max) {
      throw new UsageError(`standard input holds more than ${max} bytes; give one event`);
    }
    parts.push(c);
  }
  const all = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return all;
}

/** The one event of an explain input: a JSON object (maybe pretty-printed) or one JSON line. */
export function oneEvent(bytes: Uint8Array, name: string): ReplayEvent {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new AegisError("EVENT_INVALID", `${name}: not UTF-8 text`);
  }
  const trimmed = text.trim();
  if (trimmed === "") throw new AegisError("EVENT_INVALID", `${name}: empty; give one event`);
  const r = eventFromLine(trimmed, 1);
  if (!r.ok && r.problem.message.startsWith("invalid JSON")) {
    const lines = trimmed.split("\n").filter((l) => l.trim() !== "");
    if (lines.length > 1 && lines.every((l) => l.trim().startsWith("{"))) {
      throw new AegisError(
        "EVENT_INVALID",
        `${name} holds ${lines.length} lines; explain takes one event (e.g. ` +
          `sed -n 12p ${name} | aegisbpf explain -, or aegisbpf simulate for many)`,
      );
    }
  }
  if (!r.ok) {
    const p = r.problem;
    throw new AegisError(
      p.kind === "error" ? "EVENT_INVALID" : "EVENT_NOT_A_DECISION",
      `${name}: ${p.message}` +
        (p.kind === "error" ? "" : "; explain takes a block, net_*_block or kernel_*_block event"),
    );
  }
  return r.event;
}

function ruleText(r: RuleRef | null): string {
  if (!r) return "(unknown rule)";
  if (r.origin === "live") {
    const ttl = r.expires === undefined || r.expires === null ? "" : ` (TTL)`;
    return `live rule ${r.id}: ${r.section} ${r.text}${ttl}`;
  }
  return `${r.file}:${r.line} [${r.section}] ${r.text}`;
}

function decisionText(d: Decision): string {
  switch (d.outcome) {
    case "block":
      return `block by ${ruleText(d.rule)} (${d.rule_type}, hook ${d.hook})`;
    case "allow":
      return `allow: ${ruleText(d.rule)} matches but ${d.exempt_by} waives it`;
    case "no_match":
      return "allow: no rule matches";
    case "undetermined":
      return "undetermined: " + d.unknown.map((u) => `${u.fact} (${u.reason})`).join("; ");
  }
}

function printExplanation(x: Explanation, src: RulesSource, write: (s: string) => void): void {
  const e = x.event;
  const out: string[] = [];
  out.push(
    `event: ${e.type}, hook ${e.hook}, action ${e.action ?? "-"}, rule ${e.rule_id ?? "-"}`,
    `  ${e.summary}`,
    `rule in the event: ${x.recorded_rule.message}`,
    `rules now: ${src.policy ?? "(none)"}` +
      (src.live_rules > 0 ? ` + ${src.live_rules} live rule(s)` : ""),
    `decision now: ${decisionText(x.decision)}`,
    "match chain (decision order):",
  );
  x.decision.chain.forEach((s, i) => {
    out.push(`  ${i + 1}. ${s.step.padEnd(20)} ${s.result.padEnd(10)} ${s.detail}`);
  });
  for (const b of x.decision.branches) {
    const a = Object.entries(b.assume).map(([k, v]) => `${k}=${v ? "yes" : "no"}`).join(", ");
    out.push(`  if ${a || "(nothing unknown)"}: ${b.outcome} ${b.rule ? ruleText(b.rule) : ""}`);
  }
  out.push(`enforce mode: ${x.decision.enforce}`, `audit mode:   ${x.decision.audit}`);
  for (const n of x.notes) out.push(`note: ${n}`);
  for (const u of src.unresolved) {
    out.push(`note: ${u.section} line ${u.line} ${u.what} did not resolve here: ${u.reason}`);
  }
  write(out.map(printable).join("\n") + "\n");
}

/** Open an events input: a regular file or a pipe (not a directory or device), or "-". */
function openEvents(
  file: string,
  stdin: () => ReadableStream<Uint8Array>,
): { stream: ReadableStream<Uint8Array>; close: () => void } {
  if (file === "-") return { stream: stdin(), close: () => {} };
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(file);
  } catch (e) {
    throw new UsageError(`cannot read the event file ${file}: ${(e as Error).message}`);
  }
  if (!st.isFile && !st.isFifo) {
    throw new UsageError(
      `${file} is not a regular file or a pipe; give a file of JSON lines (or "-" for stdin)`,
    );
  }
  const f = Deno.openSync(file, { read: true });
  return {
    stream: f.readable,
    close: () => {
      try {
        f.close();
      } catch { /* closed by the stream */ }
    },
  };
}

/** Output lines collected and written in chunks. */
class Out {
  #buf: string[] = [];
  #n = 0;
  #write: (s: string) => void;
  constructor(write: (s: string) => void) {
    this.#write = write;
  }
  line(s: string): void {
    this.#buf.push(s);
    this.#n += s.length + 1;
    if (this.#n > 256 * 1024) this.flush();
  }
  flush(): void {
    if (this.#buf.length === 0) return;
    this.#write(this.#buf.join("\n") + "\n");
    this.#buf = [];
    this.#n = 0;
  }
}

export interface SimulateResult {
  report: SimulationReport;
  gzip: boolean;
  /** the input could not be read to its end (damaged gzip, read error) */
  input_error: string | null;
}

/** Replay every line of `stream` (JSON lines, gzip or not) through `sim`. */
export async function replayStream(
  stream: ReadableStream<Uint8Array>,
  sim: Simulator,
  perEvent:
    | ((
      line: number,
      r: ReturnType<Simulator["add"]> | null,
      err: string | null,
      ev?: ReplayEvent,
    ) => void)
    | null,
): Promise<{ gzip: boolean; input_error: string | null }> {
  const { stream: s, gzip } = await maybeGunzip(stream);
  let last = 0;
  try {
    for await (const l of readLines(s, MAX_EVENT_LINE)) {
      last = l.line;
      if ("error" in l) {
        sim.addProblem({ kind: "error", line: l.line, type: null, message: l.error });
        perEvent?.(l.line, null, l.error);
        continue;
      }
      if (l.text.trim() === "") continue;
      const r = eventFromLine(l.text, l.line);
      if (!r.ok) {
        sim.addProblem(r.problem);
        perEvent?.(l.line, null, r.problem.message);
        continue;
      }
      const res = sim.add(r.event);
      perEvent?.(l.line, res, null, r.event);
    }
  } catch (e) {
    return {
      gzip,
      input_error: `reading stopped after line ${last}: ${
        e instanceof Error ? e.message : String(e)
      }${gzip ? " (a damaged or truncated gzip stream?)" : ""}`,
    };
  }
  return { gzip, input_error: null };
}

function printReport(
  file: string,
  cand: string,
  r: SimulateResult,
  src: RulesSource,
  write: (s: string) => void,
): void {
  const p = r.report;
  const out: string[] = [];
  out.push(
    `simulate: ${p.events} line(s) of ${file === "-" ? "stdin" : file}${
      r.gzip ? " (gzip)" : ""
    } against ${cand}`,
    `  decided ${p.decided}, parse errors ${p.parse_errors.count}, skipped ${p.skipped.count}` +
      `, unknown types ${p.unknown_types.count}`,
    `  what happened: blocked ${p.happened.blocked}, audited ${p.happened.audited}, ` +
      `allowed ${p.happened.allowed}`,
    "",
    `${"surface".padEnd(8)} ${"would_block".padStart(12)} ${"would_allow".padStart(12)} ` +
      `${"no_match".padStart(10)} ${"undetermined".padStart(13)}`,
  );
  for (const s of SURFACES) {
    const c = p.by_surface[s];
    out.push(
      `${s.padEnd(8)} ${String(c.would_block).padStart(12)} ${
        String(c.would_allow).padStart(12)
      } ` +
        `${String(c.no_match).padStart(10)} ${String(c.undetermined).padStart(13)}`,
    );
  }
  out.push("", `top rules by hits (${p.rules_hit} rule(s) hit):`);
  if (p.top_rules.length === 0) out.push("  (none)");
  for (const h of p.top_rules) {
    out.push(
      `  ${String(h.would_block).padStart(9)} block ${String(h.would_allow).padStart(7)} ` +
        `waived  ${ruleText(h.rule)}`,
    );
  }
  const ex = (title: string, l: SimulationReport["newly_blocked"]) => {
    out.push(
      "",
      `${title}: ${l.count}${l.count > l.examples.length ? ` (first ${l.examples.length})` : ""}`,
    );
    for (const e of l.examples) {
      out.push(`  line ${e.line}: ${e.summary} → ${e.outcome} ${e.rule ? ruleText(e.rule) : ""}`);
    }
  };
  ex("newly blocked (happened, the candidate blocks)", p.newly_blocked);
  ex("newly allowed (a rule matched then, the candidate lets it through)", p.newly_allowed);
  if (p.undetermined.count > 0) {
    out.push(
      "",
      `undetermined: ${p.undetermined.count} (by unknown fact: ${
        Object.entries(p.undetermined.by_fact).map(([k, v]) => `${k} ${v}`).join(", ")
      })`,
    );
  }
  if (p.parse_errors.count > 0) {
    out.push("", `parse errors: ${p.parse_errors.count}`);
    for (const e of p.parse_errors.first) out.push(`  line ${e.line}: ${e.message}`);
  }
  if (p.unknown_types.count > 0) {
    out.push("", `unknown event types: ${p.unknown_types.count}`);
    for (const e of p.unknown_types.first) out.push(`  line ${e.line}: ${e.message}`);
  }
  for (const u of src.unresolved) {
    out.push(`note: ${u.section} line ${u.line} ${u.what} did not resolve here: ${u.reason}`);
  }
  if (r.input_error) out.push("", `error: ${r.input_error}`);
  write(out.map(printable).join("\n") + "\n");
}

function positiveInt(name: string) {
  return (v: string): number => {
    if (!/^\d{1,6}$/.test(v) || Number(v) < 1) {
      throw new UsageError(
        `${name} must be a whole number from 1 to 999999, got ${quoteBounded(v)}`,
      );
    }
    return Number(v);
  };
}

export function addReplayCommands(program: Command, _o?: unknown, deps: ReplayDeps = {}): void {
  const env = () => deps.env ?? hostCompileEnv();
  const write = deps.write ?? writeStdout;
  const stdin = deps.stdin ?? (() => Deno.stdin.readable);
  const json = (v: unknown) => write(JSON.stringify(v, null, 2) + "\n");
  program.command("explain")
    .description("explain a block event: which rule decided it, the match chain, enforce vs audit")
    .argument("<event>", 'a file holding one event (JSON), or "-" for stdin')
    .option("--policy <file>", "explain against this policy file instead of the applied one")
    .option("--json", "print the explanation as JSON")
    .addHelpText(
      "after",
      `
By default the event is explained against the applied policy
(/var/lib/aegisbpf/policy.applied) and the live rules; the output says when
the rule the event names no longer exists. Facts the event does not carry
(the verified-exec state, the survival allowlist, ...) are named, never
guessed: see docs/operations.md.
  aegisbpf explain event.json
  grep '"type":"block"' events.log | tail -n 1 | aegisbpf explain -`,
    )
    .action(async (file, opts) => {
      const asJson = opts.json === true;
      const now = deps.now ?? Date.now();
      const ev = oneEvent(
        await readInput(file, MAX_EXPLAIN_BYTES, stdin),
        file === "-" ? "stdin" : file,
      );
      const built = opts.policy !== undefined
        ? loadPolicyRules(opts.policy, env(), asJson)
        : loadAppliedRules(
          deps.stateDir ?? aegisPaths().stateDir,
          env(),
          asJson,
          deps.ownerUid,
        );
      const x = explainEvent(built.rules, ev, now);
      const src = sourceOf(built.rules, built.unresolved);
      if (asJson) json({ ok: true, ...x, rules: src });
      else printExplanation(x, src, write);
    });

  program.command("simulate")
    .description("replay recorded events (JSON lines, gzip accepted) against a candidate policy")
    .argument("<events>", 'a file of event lines (plain or gzip), or "-" for stdin')
    .requiredOption("--policy <file>", "the candidate policy file")
    .option("--per-event", "also print one line per event (JSON lines with --json)")
    .option("--top <n>", "rules listed by hits", positiveInt("--top"), 10)
    .option(
      "--examples <n>",
      "events listed per change and errors listed",
      positiveInt("--examples"),
      10,
    )
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      `
Counts what the candidate would block, waive or not match per surface and
per rule, and the events it newly blocks or newly allows compared with what
happened (BLOCK = blocked; AUDIT = a rule matched, allowed). Lines that are
not events are counted, never fatal. With --per-event --json the output is
JSON lines, the last one the report. See docs/operations.md.
  aegisbpf simulate /var/log/aegisbpf/events.jsonl.1.gz --policy candidate.conf`,
    )
    .action(async (file, opts) => {
      const asJson = opts.json === true;
      const built = loadPolicyRules(opts.policy, env(), asJson);
      const sim = new Simulator(built.rules, { top: opts.top, examples: opts.examples });
      const out = new Out(write);
      const per = opts.perEvent === true
        ? (line: number, r: ReturnType<Simulator["add"]> | null, err: string | null) => {
          if (asJson) {
            out.line(JSON.stringify(
              r
                ? {
                  line,
                  surface: r.decision.surface,
                  hook: r.decision.hook,
                  outcome: r.decision.outcome,
                  rule: r.decision.rule,
                  rule_type: r.decision.rule_type,
                  exempt_by: r.decision.exempt_by,
                  change: r.change,
                  unknown: r.decision.unknown.map((u) => u.fact),
                }
                : { line, error: err },
            ));
          } else if (r) {
            out.line(printable(
              `line ${line}: ${r.decision.surface} ${r.decision.outcome}` +
                (r.decision.rule ? ` ${ruleText(r.decision.rule)}` : "") +
                (r.change === "same" ? "" : ` [${r.change}]`),
            ));
          } else out.line(printable(`line ${line}: not replayed: ${err}`));
        }
        : null;
      const input = openEvents(file, stdin);
      let res;
      try {
        res = await replayStream(input.stream, sim, per);
      } finally {
        input.close();
      }
      out.flush();
      const result: SimulateResult = { report: sim.report(), ...res };
      const src = sourceOf(built.rules, built.unresolved);
      const summary = {
        ok: true,
        file,
        candidate: opts.policy,
        gzip: result.gzip,
        input_error: result.input_error,
        rules: src,
        ...result.report,
      };
      // --per-event --json is JSON lines: the report is the last line
      if (asJson && per) write(JSON.stringify(summary) + "\n");
      else if (asJson) json(summary);
      else printReport(file, opts.policy, result, src, write);
      if (result.input_error) {
        writeStderr(`aegisbpf: error [EVENTS_UNREADABLE]: ${result.input_error}\n`);
        Deno.exitCode = 1;
      }
    });
}
