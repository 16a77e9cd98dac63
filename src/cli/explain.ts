/**
 * `aegisbpf explain EVENT.json|- [--policy FILE]`: a recorded block event
 * explained against the applied policy and live rules, or a policy file
 * (docs/operations.md). The logic is in src/policy/explain.ts (and
 * decide.ts); this file reads the event, loads the rules and prints.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { aegisPaths } from "../contracts.ts";
import { AegisError, UsageError } from "../errors.ts";
import type { Decision } from "../policy/decide.ts";
import { eventFromLine, type ReplayEvent } from "../policy/event_input.ts";
import { explainEvent, type Explanation } from "../policy/explain.ts";
import { concatBytes } from "../util/bytes.ts";
import { readFileCapped } from "../util/read_file.ts";
import {
  commandIo,
  loadAppliedRules,
  loadPolicyRules,
  printable,
  type ReplayDeps,
  type RulesSource,
  ruleText,
  sourceOf,
} from "./replay_common.ts";

/** Largest single event `explain` reads (one event; a pretty-printed one is a few KiB). */
export const MAX_EXPLAIN_BYTES = 1024 * 1024;

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
  return concatBytes(parts, n);
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

export function addExplainCommand(program: Command, _o?: unknown, deps: ReplayDeps = {}): void {
  const { env, write, stdin, json } = commandIo(deps);
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
}
