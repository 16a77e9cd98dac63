/**
 * `aegisbpf simulate`, the logic: recorded events replayed one at a time
 * against a candidate rule set (src/policy/decide.ts), folded into totals
 * whose size does not grow with the number of events — outcomes per
 * surface, hits per rule (a table bounded by the candidate's rules), the
 * events the candidate newly blocks or newly allows compared with what
 * happened (counts, and the first few as examples), problems counted by
 * kind and type (the first few listed with their line).
 *
 * "What happened" is the record: a block record with action BLOCK (or a
 * signal) was blocked, AUDIT means a rule matched but the operation went
 * through (audit mode: the rule would have blocked in enforce mode), an
 * exec event happened. The candidate is judged as if it enforced: it
 * "blocks" what its rules match and nothing waives.
 *
 * @module
 */
import { decide, type Decision, type Outcome } from "./decide.ts";
import {
  eventFromLine,
  type EventProblem,
  MAX_EVENT_LINE,
  type ReplayEvent,
} from "./event_input.ts";
import { maybeGunzip, readLines } from "../util/lines.ts";
import { eventSummary } from "./explain.ts";
import type { RuleRef, RuleSet } from "./ruleset.ts";

export const SURFACES = ["file", "exec", "net", "kernel"] as const;
export type Surface = typeof SURFACES[number];

export type OutcomeCounts = Record<
  "would_block" | "would_allow" | "no_match" | "undetermined",
  number
>;

/** How the candidate's verdict compares with the record. */
export type Change = "newly_blocked" | "newly_allowed" | "same" | "undetermined";

export interface Example {
  line: number;
  type: string;
  summary: string;
  happened: ReplayEvent["happened"];
  recorded_rule_id: number | null;
  outcome: Outcome;
  rule: RuleRef | null;
}

export interface RuleHits {
  rule: RuleRef;
  /** events the rule would block */
  would_block: number;
  /** events it matched where an exemption (allow_cgroup, survival, agent) let them through */
  would_allow: number;
}

export interface SimulationReport {
  events: number;
  decided: number;
  by_surface: Record<Surface, OutcomeCounts>;
  top_rules: RuleHits[];
  rules_hit: number;
  happened: Record<ReplayEvent["happened"], number>;
  newly_blocked: { count: number; examples: Example[] };
  newly_allowed: { count: number; examples: Example[] };
  undetermined: { count: number; by_fact: Record<string, number> };
  parse_errors: { count: number; first: { line: number; message: string }[] };
  skipped: { count: number; by_type: Record<string, number> };
  unknown_types: {
    count: number;
    by_type: Record<string, number>;
    first: { line: number; message: string }[];
  };
}

const OUTCOME_KEY: Record<Outcome, keyof OutcomeCounts> = {
  block: "would_block",
  allow: "would_allow",
  no_match: "no_match",
  undetermined: "undetermined",
};

/** Most distinct event types / fact names counted by name (then "(other)"). */
const MAX_KEYS = 64;

function bump(m: Map<string, number>, k: string): void {
  if (!m.has(k) && m.size >= MAX_KEYS) k = "(other)";
  m.set(k, (m.get(k) ?? 0) + 1);
}

function ruleKey(r: RuleRef): string {
  return `${r.origin}/${r.section}/${r.id}/${r.text}`;
}

/** Compare the candidate's verdict with what happened. */
export function changeOf(ev: ReplayEvent, d: Decision): Change {
  if (d.outcome === "undetermined") return "undetermined";
  const matchedThen = ev.happened !== "allowed";
  const blocksNow = d.outcome === "block";
  if (blocksNow && !matchedThen) return "newly_blocked";
  if (!blocksNow && matchedThen) return "newly_allowed";
  return "same";
}

export interface SimulatorOptions {
  /** rules listed in top_rules */
  top?: number;
  /** examples kept of newly blocked / allowed, and problems listed */
  examples?: number;
}

export class Simulator {
  #rs: RuleSet;
  #top: number;
  #examples: number;
  #events = 0;
  #decided = 0;
  #bySurface = Object.fromEntries(
    SURFACES.map((s) => [s, { would_block: 0, would_allow: 0, no_match: 0, undetermined: 0 }]),
  ) as Record<Surface, OutcomeCounts>;
  #rules = new Map<string, RuleHits>();
  #happened = { blocked: 0, audited: 0, allowed: 0 };
  #newlyBlocked = { count: 0, examples: [] as Example[] };
  #newlyAllowed = { count: 0, examples: [] as Example[] };
  #undeterminedCount = 0;
  #undeterminedBy = new Map<string, number>();
  #errors = { count: 0, first: [] as { line: number; message: string }[] };
  #skipped = new Map<string, number>();
  #skippedCount = 0;
  #unknown = {
    count: 0,
    by: new Map<string, number>(),
    first: [] as { line: number; message: string }[],
  };

  constructor(rs: RuleSet, opts: SimulatorOptions = {}) {
    this.#rs = rs;
    this.#top = opts.top ?? 10;
    this.#examples = opts.examples ?? 10;
  }

  /** Replay one event; returns its decision and how it compares with the record. */
  add(ev: ReplayEvent): { decision: Decision; change: Change } {
    this.#events++;
    this.#decided++;
    const d = decide(this.#rs, ev);
    this.#bySurface[ev.surface][OUTCOME_KEY[d.outcome]]++;
    this.#happened[ev.happened]++;
    if (d.rule && (d.outcome === "block" || d.outcome === "allow")) {
      const k = ruleKey(d.rule);
      let h = this.#rules.get(k);
      if (!h) this.#rules.set(k, h = { rule: d.rule, would_block: 0, would_allow: 0 });
      if (d.outcome === "block") h.would_block++;
      else h.would_allow++;
    }
    if (d.outcome === "undetermined") {
      this.#undeterminedCount++;
      for (const u of d.unknown) bump(this.#undeterminedBy, u.fact);
    }
    const change = changeOf(ev, d);
    const keep = (l: { count: number; examples: Example[] }) => {
      l.count++;
      if (l.examples.length < this.#examples) {
        l.examples.push({
          line: ev.line,
          type: ev.type,
          summary: eventSummary(ev),
          happened: ev.happened,
          recorded_rule_id: ev.ruleId,
          outcome: d.outcome,
          rule: d.rule,
        });
      }
    };
    if (change === "newly_blocked") keep(this.#newlyBlocked);
    else if (change === "newly_allowed") keep(this.#newlyAllowed);
    return { decision: d, change };
  }

  /** Count a line that is not a replayable event. */
  addProblem(p: EventProblem): void {
    this.#events++;
    const item = { line: p.line, message: p.message };
    if (p.kind === "skip") {
      this.#skippedCount++;
      bump(this.#skipped, p.type ?? "?");
    } else if (p.kind === "unknown_type") {
      this.#unknown.count++;
      bump(this.#unknown.by, p.type ?? "?");
      if (this.#unknown.first.length < this.#examples) this.#unknown.first.push(item);
    } else {
      this.#errors.count++;
      if (this.#errors.first.length < this.#examples) this.#errors.first.push(item);
    }
  }

  report(): SimulationReport {
    const hits = [...this.#rules.values()].sort((a, b) =>
      b.would_block - a.would_block || b.would_allow - a.would_allow ||
      a.rule.id - b.rule.id
    );
    return {
      events: this.#events,
      decided: this.#decided,
      by_surface: structuredClone(this.#bySurface),
      top_rules: hits.slice(0, this.#top),
      rules_hit: hits.length,
      happened: { ...this.#happened },
      newly_blocked: structuredClone(this.#newlyBlocked),
      newly_allowed: structuredClone(this.#newlyAllowed),
      undetermined: {
        count: this.#undeterminedCount,
        by_fact: Object.fromEntries(this.#undeterminedBy),
      },
      parse_errors: structuredClone(this.#errors),
      skipped: { count: this.#skippedCount, by_type: Object.fromEntries(this.#skipped) },
      unknown_types: {
        count: this.#unknown.count,
        by_type: Object.fromEntries(this.#unknown.by),
        first: [...this.#unknown.first],
      },
    };
  }
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
