/**
 * `aegisbpf simulate EVENTS.jsonl|- --policy CANDIDATE [--per-event]`:
 * recorded events (JSON lines, plain or gzip, streamed) replayed against a
 * candidate policy (docs/operations.md). The logic is in
 * src/policy/simulate.ts (and decide.ts); this file opens the input, loads
 * the candidate and prints the report.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { UsageError } from "../errors.ts";
import { writeStderr } from "../log.ts";
import { quoteBounded } from "../policy/event_input.ts";
import { replayStream, type SimulationReport, Simulator, SURFACES } from "../policy/simulate.ts";
import {
  commandIo,
  loadPolicyRules,
  printable,
  type ReplayDeps,
  type RulesSource,
  ruleText,
  sourceOf,
} from "./replay_common.ts";

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

export function addSimulateCommand(program: Command, _o?: unknown, deps: ReplayDeps = {}): void {
  const { env, write, stdin, json } = commandIo(deps);
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
