/**
 * Blocks by rule and by cgroup, for `aegisbpf stats --detailed`
 * (docs/operations.md, "Counters"). The kernel counts blocks per hook only
 * (aegis_hook_stats); this tally counts the block records the daemon reads
 * from the ring, so it starts with the daemon, misses the records the ring
 * dropped (`ringbuf_drops` says how many), and leaves out the enforcement
 * proof's own denies (the daemon hands it user-visible records only).
 *
 * Bounded: at most {@link TALLY_MAX_KEYS} rules and as many cgroups; a
 * record of a rule or cgroup beyond that is counted in `other`, never lost.
 *
 * @module
 */
import { AEGIS_ACT_AUDIT } from "../bpf/abi_gen.ts";
import type { KernelRecord } from "../events/decode.ts";

/** Rules (and cgroups) the tally keeps apart; the rest go to `other`. */
export const TALLY_MAX_KEYS = 4096;

/** Blocks (denied or signalled) and audits (only reported). */
export interface TallyCounts {
  blocks: number;
  audits: number;
}

/** What `GET /stats/blocks` answers (the CLI's BlockTallyJson). */
export interface BlockTallySnapshot {
  since_unix: number;
  records: number;
  by_rule: (TallyCounts & { rule_id: number; rule: string | null })[];
  by_cgroup: (TallyCounts & { cgid: string; cgroup_path: string | null })[];
  /** records of rules and of cgroups beyond the bound */
  other: { rules: TallyCounts; cgroups: TallyCounts };
}

function bump<K>(m: Map<K, TallyCounts>, key: K, audit: boolean, other: TallyCounts, max: number) {
  let c = m.get(key);
  if (c === undefined) {
    if (m.size >= max) c = other;
    else m.set(key, c = { blocks: 0, audits: 0 });
  }
  if (audit) c.audits++;
  else c.blocks++;
}

/** Most first, then by key. */
function ranked<K>(m: Map<K, TallyCounts>): [K, TallyCounts][] {
  return [...m].sort((a, b) =>
    (b[1].blocks + b[1].audits) - (a[1].blocks + a[1].audits) || (a[0] < b[0] ? -1 : 1)
  );
}

export class BlockTally {
  readonly sinceUnix: number;
  readonly #max: number;
  records = 0;
  readonly #byRule = new Map<number, TallyCounts>();
  readonly #byCgroup = new Map<string, TallyCounts>();
  readonly #otherRules: TallyCounts = { blocks: 0, audits: 0 };
  readonly #otherCgroups: TallyCounts = { blocks: 0, audits: 0 };

  constructor(nowMs = Date.now(), maxKeys = TALLY_MAX_KEYS) {
    this.sinceUnix = Math.floor(nowMs / 1000);
    this.#max = maxKeys;
  }

  /** Count a record (block records only; the others are ignored). */
  observe(r: KernelRecord): void {
    if (r.kind !== "file_block" && r.kind !== "net_block" && r.kind !== "kernel_block") return;
    const audit = r.action === AEGIS_ACT_AUDIT;
    this.records++;
    bump(this.#byRule, r.ruleId, audit, this.#otherRules, this.#max);
    bump(this.#byCgroup, String(r.cgid), audit, this.#otherCgroups, this.#max);
  }

  /** The counts, most first, each rule and cgroup named by the callbacks. */
  snapshot(
    ruleName: (id: number) => string | null,
    cgroupPath: (cgid: string) => string | null,
  ): BlockTallySnapshot {
    return {
      since_unix: this.sinceUnix,
      records: this.records,
      by_rule: ranked(this.#byRule).map(([id, c]) => ({ rule_id: id, rule: ruleName(id), ...c })),
      by_cgroup: ranked(this.#byCgroup).map(([cgid, c]) => ({
        cgid,
        cgroup_path: cgroupPath(cgid),
        ...c,
      })),
      other: { rules: { ...this.#otherRules }, cgroups: { ...this.#otherCgroups } },
    };
  }
}
