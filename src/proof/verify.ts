/**
 * Rule verification, the second half of the enforcement proof
 * (docs/posture.md, "Rule verification"): the canaries show that the
 * kernel denies *a* rule; this shows that it denies *the operator's* file
 * rules. Each round opens the paths of up to `limit` global file deny rules
 * (`deny_path` lines of the applied policy, `block add` live rules) from a
 * probe process outside the agent's cgroup (src/native/probe.ts). The
 * kernel must answer EPERM; a path that opens is an unenforced rule, with
 * the reason, until a later round sees it denied or the rule is gone.
 *
 * Rules never verified go first (after a policy apply, a live edit or the
 * restore at start every rule counts as new); the rest of a round's budget
 * rotates through the others, so every rule is tried again within
 * ceil(rules / limit) rounds.
 *
 * Pure apart from the injected probe, target list and kernel lookup, so it
 * is unit-tested with fakes (verify_test.ts).
 *
 * @module
 */
import { errnoName } from "../errno.ts";
import type { ProbeOpenResult } from "../native/probe.ts";
import { S_IFDIR, S_IFREG } from "../native/probe.ts";

/** A global file deny rule with the path it was given as. */
export interface FileRuleTarget {
  ruleId: number;
  path: string;
}

/** One unenforced rule, as capabilities.json lists it. */
export interface UnenforcedRule {
  rule_id: number;
  surface: "file";
  target: string;
  reason: string;
}

/** Rules verified per round by default (one probe process opens them all). */
export const DEFAULT_VERIFY_LIMIT = 64;
/** Milliseconds a probe may take before it is killed. */
export const VERIFY_TIMEOUT_MS = 5000;

export interface VerifyDeps {
  /** the rules to verify, now */
  targets(): FileRuleTarget[];
  /** open `paths` from a process outside the agent's cgroup */
  probe(paths: string[]): Promise<ProbeOpenResult>;
  /**
   * Does the live rule generation hold a file rule for the file `path`
   * names now? With that file's identity for the report; null when that
   * cannot be told (e.g. the path cannot be resolved any more).
   */
  heldNow(path: string): { held: boolean; identity: string } | null;
  /** rules per round (default DEFAULT_VERIFY_LIMIT) */
  limit?: number;
}

/** What the last round did. */
export interface VerifyRound {
  /** rules the probe tried */
  tried: number;
  /** of those, rules not tried before (new since the last change) */
  fresh: number;
  /** of those, denied with EPERM */
  denied: number;
  /** found open: listed as unenforced */
  unenforced: number;
  /** not tried to the end: the path is missing, or names a device, FIFO or socket */
  skipped: number;
  /** an answer that is neither EPERM nor an open (e.g. EACCES from file modes) */
  inconclusive: number;
  /** rules known in all */
  rules: number;
}

/**
 * What a policy apply or `block add` answers about the verification that
 * followed it (the daemon runs one round before it replies).
 */
export interface RuleVerification {
  /** the last round's counts, or null when no round has run yet */
  round: VerifyRound | null;
  /** every rule listed as unenforced now (not only the last round's) */
  unenforced: UnenforcedRule[];
  /** why the last round could not run, or null */
  error: string | null;
}

const key = (t: FileRuleTarget) => `${t.ruleId}\u0000${t.path}`;

export class RuleVerifier {
  #d: VerifyDeps;
  #limit: number;
  /** keys verified since the last invalidate(), in the order they were last tried */
  #seen = new Set<string>();
  #unenforced = new Map<string, UnenforcedRule>();
  #last: VerifyRound | null = null;
  #error: string | null = null;

  constructor(d: VerifyDeps) {
    this.#d = d;
    this.#limit = d.limit ?? DEFAULT_VERIFY_LIMIT;
    if (!Number.isSafeInteger(this.#limit) || this.#limit < 1) {
      throw new RangeError(`verify limit ${this.#limit}: must be a whole number >= 1`);
    }
  }

  /** Every rule counts as new again (after an apply, a live edit, a restore). */
  invalidate(): void {
    this.#seen.clear();
  }

  /** The rules found not denied (a copy), in rule-id order. */
  get unenforced(): UnenforcedRule[] {
    return [...this.#unenforced.values()].sort((a, b) =>
      a.rule_id - b.rule_id || (a.target < b.target ? -1 : a.target > b.target ? 1 : 0)
    );
  }

  get lastRound(): VerifyRound | null {
    return this.#last ? { ...this.#last } : null;
  }

  /** The last round, the unenforced rules and the last round's error, for a reply. */
  summary(): RuleVerification {
    return { round: this.lastRound, unenforced: this.unenforced, error: this.#error };
  }

  /** Why the rules are not all enforced, or null. */
  problem(): string | null {
    const u = this.unenforced;
    if (u.length === 0) return null;
    const shown = u.slice(0, 3).map((r) =>
      `rule ${r.rule_id} ${JSON.stringify(r.target)}: ${r.reason}`
    );
    return `rule verification: ${u.length} rule(s) not denied by the kernel: ${shown.join("; ")}` +
      (u.length > shown.length ? `; and ${u.length - shown.length} more` : "");
  }

  /**
   * One round. Throws when the probe cannot run or cannot leave the
   * agent's cgroup (nothing it saw would count); the list is then unchanged.
   */
  async round(): Promise<VerifyRound> {
    try {
      const r = await this.#round();
      this.#error = null;
      return r;
    } catch (e) {
      this.#error = e instanceof Error ? e.message : String(e);
      throw e;
    }
  }

  async #round(): Promise<VerifyRound> {
    const all = this.#d.targets();
    const live = new Set(all.map(key));
    for (const k of [...this.#unenforced.keys()]) if (!live.has(k)) this.#unenforced.delete(k);
    for (const k of [...this.#seen]) if (!live.has(k)) this.#seen.delete(k);

    // never-verified rules first, then the longest-unverified ones (#seen keeps try order)
    const fresh = all.filter((t) => !this.#seen.has(key(t)));
    const pick = fresh.slice(0, this.#limit);
    if (pick.length < this.#limit) {
      const byKey = new Map(all.map((t) => [key(t), t]));
      for (const k of this.#seen) {
        if (pick.length >= this.#limit) break;
        const t = byKey.get(k);
        if (t) pick.push(t);
      }
    }
    const r: VerifyRound = {
      tried: 0,
      fresh: 0,
      denied: 0,
      unenforced: 0,
      skipped: 0,
      inconclusive: 0,
      rules: all.length,
    };
    if (pick.length === 0) {
      this.#last = r;
      return { ...r };
    }
    const res = await this.#d.probe(pick.map((t) => t.path));
    if (res.cgroupErrno !== 0) {
      throw new Error(
        res.cgroupErrno === -1
          ? "the verification probe never reported (it did not start or was killed)"
          : `the verification probe could not leave the agent's cgroup: ${
            errnoName(res.cgroupErrno)
          }`,
      );
    }
    for (let i = 0; i < res.paths.length; i++) {
      const t = pick[i];
      const p = res.paths[i];
      const k = key(t);
      if (!this.#seen.has(k)) r.fresh++;
      // tried now: to the end of the rotation
      this.#seen.delete(k);
      this.#seen.add(k);
      r.tried++;
      if (p.lookupErrno === 1 /* EPERM: a denied directory on the way */) {
        r.denied++;
        this.#unenforced.delete(k);
        continue;
      }
      if (p.lookupErrno !== 0) {
        // missing (ENOENT, ENOTDIR): nothing to open, nothing a workload could open either
        if (p.lookupErrno === 2 || p.lookupErrno === 20) r.skipped++;
        else r.inconclusive++;
        this.#unenforced.delete(k);
        continue;
      }
      if (p.type !== S_IFREG && p.type !== S_IFDIR) {
        r.skipped++; // never opened: a device or FIFO open can have effects of its own
        this.#unenforced.delete(k);
        continue;
      }
      if (p.openErrno === 1) {
        r.denied++;
        this.#unenforced.delete(k);
      } else if (p.openErrno === 0) {
        r.unenforced++;
        this.#unenforced.set(k, {
          rule_id: t.ruleId,
          surface: "file",
          target: t.path,
          reason: this.#why(t.path, p.type === S_IFDIR),
        });
      } else {
        r.inconclusive++;
      }
    }
    if (res.timedOut) r.inconclusive += pick.length - res.paths.length;
    this.#last = r;
    return { ...r };
  }

  #why(path: string, dir: boolean): string {
    const what = dir ? "directory" : "file";
    const h = this.#d.heldNow(path);
    const opened = `a process outside the agent's cgroup opened the ${what}`;
    if (!h) return opened;
    if (!h.held) {
      return `${opened}: the kernel holds no rule for the ${what} the path names now ` +
        `(${h.identity}); it was replaced or created again after the rule was applied. ` +
        "Apply the policy again (or block add the path) to cover it";
    }
    return `${opened}: the kernel holds a rule for it (${h.identity}) but did not deny the ` +
      'open; see docs/engine.md, "File identity per file system"';
  }
}

/** Show a skipped or inconclusive count in a log line. */
export function describeRound(r: VerifyRound): string {
  return `${r.tried} of ${r.rules} rule(s) tried: ${r.denied} denied, ${r.unenforced} open` +
    (r.skipped ? `, ${r.skipped} skipped (missing, or not a regular file or directory)` : "") +
    (r.inconclusive ? `, ${r.inconclusive} inconclusive` : "");
}
