/**
 * A file block's rule id → the path its rule names, for block events the
 * kernel could not give a path (the `inode_permission` hook, a path the
 * kernel could not resolve): the event then says `path_source: "rule"`
 * (docs/telemetry.md). The rule's path is where the rule was placed; the
 * file opened may have another name for the same inode (a hard link, a
 * bind mount).
 *
 * The table is read from `source` (the applied policy's `deny_path` lines,
 * the live path rules, and the files a content scan denied: their rule id
 * is their [deny_binary_hash] line, and contentOf() gives that content) at most once per `maxAgeMs`, and again after
 * invalidate() (a policy apply, a rule edit); a failed read keeps the last
 * table.
 *
 * @module
 */
import type { RulePaths } from "./json.ts";

export interface RulePathTarget {
  ruleId: number;
  path: string;
  /** a file the content scan denied: the content it carries (policy/content_scan.ts) */
  sha256?: string;
}

export class RulePathCache implements RulePaths {
  #source: () => RulePathTarget[];
  #maxAgeMs: number;
  #now: () => number;
  #table = new Map<number, { path: string; sha256?: string }>();
  #readAt = -Infinity;
  /** failed reads of the source */
  errors = 0;

  constructor(
    source: () => RulePathTarget[],
    opts: { maxAgeMs?: number; now?: () => number } = {},
  ) {
    this.#source = source;
    this.#maxAgeMs = opts.maxAgeMs ?? 1000;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Read the source again at the next lookup. */
  invalidate(): void {
    this.#readAt = -Infinity;
  }

  pathOf(ruleId: number): string | null {
    return this.#lookup(ruleId)?.path ?? null;
  }

  contentOf(ruleId: number): string | null {
    return this.#lookup(ruleId)?.sha256 ?? null;
  }

  #lookup(ruleId: number): { path: string; sha256?: string } | undefined {
    const t = this.#now();
    if (t - this.#readAt >= this.#maxAgeMs) {
      this.#readAt = t;
      try {
        const next = new Map<number, { path: string; sha256?: string }>();
        for (const r of this.#source()) {
          // the first target of an id wins (a deny_path line before a scan's file)
          if (!next.has(r.ruleId)) next.set(r.ruleId, { path: r.path, sha256: r.sha256 });
        }
        this.#table = next;
      } catch {
        this.errors++;
      }
    }
    return this.#table.get(ruleId);
  }
}
