/**
 * Paths named by a policy that do not exist yet ("unresolved", reported by
 * compilePolicy) are enforced as soon as they appear.
 *
 * Each pending path is filed under its *gate*: its shortest prefix that is
 * missing (the path itself when only the file is missing, else the first
 * missing directory on the way). The gate's parent is the nearest existing
 * directory (its *anchor*). Many paths share few anchors (100,000 missing
 * files in one directory: one anchor), so the watcher keeps one
 * non-recursive inotify watch per anchor, at most `maxWatchedDirs` of them
 * (the anchors with the most gates). An event in a watched directory
 * checks only the gate it names (one map lookup): the path resolves and
 * its rule is written into the live generation (`enforce`, e.g.
 * pathRuleEnforcer) and reported (`onResolved`), or a missing directory
 * appeared and its paths move down to their next gate.
 *
 * A periodic re-check covers what watching cannot see (anchors beyond the
 * watch budget, symlinks that start pointing somewhere, file systems
 * without inotify events): every `recheckMs` (5 s) it checks at most
 * `recheckBudget` (2,000) gates, one stat or realpath each, resuming where
 * the previous tick stopped, so a full sweep of G gates takes
 * ceil(G / recheckBudget) ticks and no tick allocates per pending path.
 * At most `maxTracked` (131,072) paths are tracked; the rest are reported
 * once through onError and stay pending until the policy is applied again.
 * docs/policy.md ("Paths that do not exist yet") has the numbers.
 *
 * Only deny_path / protect_path entries are watched; unresolved cgroups
 * (allow_cgroup, cgroup_deny_*) stay pending until the policy is applied
 * again (they need the whole rule, not just an inode).
 *
 * @module
 */
import {
  AEGIS_POL_FILE_RULES,
  AEGIS_RT_INODE,
  AEGIS_RULE_DENY,
  AEGIS_RULE_PROTECT,
} from "../bpf/abi_gen.ts";
import type { BpfMap } from "../bpf/map.ts";
import { type ResolvedPath, resolveRulePath } from "../bpf/path_rule.ts";
import { inodeKey, policyValue, ruleValue, u32Key } from "../bpf/rule_codec.ts";
import { liveGeneration } from "./generations.ts";
import type { Unresolved } from "./compile.ts";
import type { MapName } from "../bpf/abi_gen.ts";

/** Sections whose unresolved entries are paths this watcher can enforce. */
export const WATCHED_SECTIONS: readonly string[] = ["deny_path", "protect_path"];

/** Default period of the re-check (ms). */
export const DEFAULT_RECHECK_MS = 5000;
/** Default number of gates (stat or realpath each) re-checked per period. */
export const DEFAULT_RECHECK_BUDGET = 2000;
/** Default most directories watched at once (inotify watches). */
export const DEFAULT_MAX_WATCHED_DIRS = 64;
/** Default most unresolved paths tracked. */
export const DEFAULT_MAX_TRACKED = 131_072;

/** A path that appeared and is enforced now. */
export interface ResolvedEntry {
  entry: Unresolved;
  canonical: string;
  dev: number;
  ino: number;
  /** ms since the watcher started watching it */
  pendingMs: number;
  /** "watch" (an inotify event) or "recheck" (the periodic fallback, or a start/rewatch) */
  via: "watch" | "recheck";
}

/** One still-missing entry, for capabilities.json. */
export interface PendingEntry extends Unresolved {
  /** directory watched for it, or null (re-checked periodically only, or not a path) */
  watching: string | null;
}

/** The part of Deno.FsWatcher the watcher uses. */
export interface FsWatcherLike extends AsyncIterable<Deno.FsEvent> {
  close(): void;
}

export interface UnresolvedWatcherDeps {
  /** write the rule for a resolved entry into the live generation */
  enforce: (entry: Unresolved, resolved: { dev: number; ino: number }) => void;
  /** a path was resolved and enforced (the daemon logs / emits it) */
  onResolved?: (r: ResolvedEntry) => void;
  /**
   * enforcing or watching failed (the entry stays pending; retried on the
   * next check), or paths beyond `maxTracked` are not tracked (once)
   */
  onError?: (what: string, error: unknown) => void;
  resolvePath?: (path: string) => ResolvedPath;
  /** default: Deno.watchFs(paths, { recursive: false }) */
  watchFs?: (paths: string[]) => FsWatcherLike;
  /** is `path` an existing directory? (default: Deno.statSync) */
  isDir?: (path: string) => boolean;
  /** default globalThis timers */
  setInterval?: (fn: () => void, ms: number) => number;
  clearInterval?: (id: number) => void;
  /** ms clock (default performance.now) */
  now?: () => number;
  /** periodic re-check interval (default DEFAULT_RECHECK_MS; 0 = none) */
  recheckMs?: number;
  /** gates re-checked per interval (default DEFAULT_RECHECK_BUDGET) */
  recheckBudget?: number;
  /** most directories watched at once (default DEFAULT_MAX_WATCHED_DIRS) */
  maxWatchedDirs?: number;
  /** most unresolved paths tracked (default DEFAULT_MAX_TRACKED) */
  maxTracked?: number;
  /**
   * the names in a directory, read at most up to `max` of them (null: more,
   * or unreadable). Default: Deno.readDirSync when neither resolvePath nor
   * isDir is replaced; else none (every path is resolved).
   */
  listDir?: (dir: string, max: number) => Set<string> | null;
}

/** Files a batch of at least this many paths with one directory listing per parent. */
const LIST_MIN_BATCH = 64;
/** Largest directory listed (entries); larger ones fall back to a realpath per path. */
const LIST_MAX_ENTRIES = 65_536;

function defaultListDir(dir: string, max: number): Set<string> | null {
  const names = new Set<string>();
  try {
    for (const e of Deno.readDirSync(dir)) {
      if (names.size >= max) return null;
      names.add(e.name);
    }
  } catch {
    return null;
  }
  return names;
}

function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

/** The prefix of `path` one component below `dir` (a proper prefix of it). */
function childOf(dir: string, path: string): string {
  const from = dir === "/" ? 1 : dir.length + 1;
  const i = path.indexOf("/", from);
  return i < 0 ? path : path.slice(0, i);
}

function defaultIsDir(p: string): boolean {
  try {
    return Deno.statSync(p).isDirectory;
  } catch {
    return false;
  }
}

/** The entries filed under one gate: one, or several naming paths below it. */
type Slot = Unresolved | Unresolved[];

const each = (s: Slot): readonly Unresolved[] => (Array.isArray(s) ? s : [s]);

/**
 * Watches the unresolved path entries of the applied policy. Construct,
 * start(), and stop() when the policy is replaced (or construct a new one
 * per apply). The constructor does no I/O.
 */
export class UnresolvedWatcher {
  #d: UnresolvedWatcherDeps;
  #isDir: (p: string) => boolean;
  #resolve: (p: string) => ResolvedPath;
  #listDir: ((dir: string, max: number) => Set<string> | null) | null;
  /** most names a listing may hold now (smaller during a tick) */
  #listMax = LIST_MAX_ENTRIES;
  #now: () => number;
  #since: number;
  /** path entries not filed yet (before the first check) */
  #unplaced: Unresolved[];
  /** gate -> the entries waiting for it */
  #gates = new Map<string, Slot>();
  /** anchor (a gate's parent) -> number of gates below it */
  #anchors = new Map<string, number>();
  /** the re-check's position in #gates, kept between ticks */
  #cursor: MapIterator<[string, Slot]> | null = null;
  /** entries of other sections (never checked) */
  #other: Unresolved[];
  /** path entries beyond maxTracked (never checked) */
  #untracked: Unresolved[];
  #pendingPaths = 0;
  #watcher: FsWatcherLike | null = null;
  #watchedDirs: string[] = [];
  /** watched anchors found missing: not chosen again until they hold no gate */
  #gone = new Set<string>();
  /** a new anchor: rewatch now (events can be missed until then) */
  #dirty = false;
  /** an anchor lost its last gate or vanished: rewatch on the next tick */
  #stale = false;
  #timer: number | null = null;
  #stopped = false;

  constructor(entries: readonly Unresolved[], deps: UnresolvedWatcherDeps) {
    this.#d = deps;
    this.#isDir = deps.isDir ?? defaultIsDir;
    this.#resolve = deps.resolvePath ?? resolveRulePath;
    this.#listDir = deps.listDir ??
      (deps.resolvePath === undefined && deps.isDir === undefined ? defaultListDir : null);
    this.#now = deps.now ?? (() => performance.now());
    this.#since = this.#now();
    const max = deps.maxTracked ?? DEFAULT_MAX_TRACKED;
    const paths = entries.filter((e) => WATCHED_SECTIONS.includes(e.section));
    this.#other = entries.filter((e) => !WATCHED_SECTIONS.includes(e.section));
    this.#unplaced = paths.length > max ? paths.slice(0, max) : paths;
    this.#untracked = paths.length > max ? paths.slice(max) : [];
    this.#pendingPaths = this.#unplaced.length;
  }

  /** Check once, then watch and re-check periodically. Returns what the first check resolved. */
  start(): ResolvedEntry[] {
    if (this.#untracked.length > 0) {
      this.#d.onError?.(
        "unresolved paths",
        new Error(
          `${this.#untracked.length} of ${
            this.#untracked.length + this.#unplaced.length
          } missing policy paths are beyond the limit of ${this.#unplaced.length} watched paths; ` +
            "they are not enforced when they appear (apply the policy again once they exist)",
        ),
      );
    }
    const first = this.checkNow("recheck");
    this.#rewatch();
    const ms = this.#d.recheckMs ?? DEFAULT_RECHECK_MS;
    if (ms > 0 && !this.#stopped) {
      const si = this.#d.setInterval ?? ((f, t) => setInterval(f, t) as unknown as number);
      this.#timer = si(() => this.#tick(), ms);
    }
    return first;
  }

  /**
   * Entries still missing, at most `limit` of them (one object per entry:
   * for reports; count with pendingCount).
   */
  pending(limit = Infinity): PendingEntry[] {
    const out: PendingEntry[] = [];
    const watched = new Set(this.#watchedDirs);
    const add = (e: Unresolved, watching: string | null) => {
      if (out.length >= limit) return false;
      out.push({ ...e, watching });
      return true;
    };
    for (const e of this.#unplaced) if (!add(e, null)) return out;
    for (const [gate, slot] of this.#gates) {
      const a = parentOf(gate);
      const watching = watched.has(a) ? a : null;
      for (const e of each(slot)) if (!add(e, watching)) return out;
    }
    for (const e of this.#untracked) if (!add(e, null)) return out;
    for (const e of this.#other) if (!add(e, null)) return out;
    return out;
  }

  /** Number of entries still missing (aegisbpf_policy_unresolved_paths). */
  get pendingCount(): number {
    return this.#pendingPaths + this.#untracked.length + this.#other.length;
  }

  /** Path entries beyond maxTracked (pending, never checked). */
  get untrackedCount(): number {
    return this.#untracked.length;
  }

  /** Directories watched now. */
  get watchedDirs(): readonly string[] {
    return this.#watchedDirs;
  }

  /** Gates (distinct missing prefixes) tracked now. */
  get gateCount(): number {
    return this.#gates.size;
  }

  /**
   * Resolve and enforce every tracked path entry that exists now: one full
   * pass over every gate (start() and tests; the timer uses a budget).
   */
  checkNow(via: "watch" | "recheck" = "recheck"): ResolvedEntry[] {
    const done: ResolvedEntry[] = [];
    let n = this.#gates.size;
    for (const [gate, slot] of this.#gates) {
      if (n-- <= 0) break; // gates filed during this pass were checked when filed
      this.#check(gate, slot, via, done);
    }
    if (this.#unplaced.length > 0) {
      const fresh = this.#unplaced;
      this.#unplaced = [];
      this.#pendingPaths -= fresh.length;
      this.#place(fresh, null, via, done);
    }
    this.#report(done);
    return done;
  }

  /** onResolved for each, once the bookkeeping is done (a callback may read pending()). */
  #report(done: readonly ResolvedEntry[]): void {
    for (const d of done) this.#d.onResolved?.(d);
  }

  /** One timer tick: watched anchors still there, a budget of gates re-checked, rewatch if needed. */
  #tick(): void {
    if (this.#stopped) return;
    for (const d of this.#watchedDirs) {
      if (!this.#isDir(d)) {
        this.#gone.add(d);
        this.#stale = true;
      }
    }
    const done: ResolvedEntry[] = [];
    const perTick = this.#d.recheckBudget ?? DEFAULT_RECHECK_BUDGET;
    let budget = Math.min(perTick, this.#gates.size);
    // directories listed this tick: at most `perTick` names each (else a realpath per gate)
    const listings = this.#listDir ? new Map<string, Set<string> | null>() : null;
    this.#listMax = perTick;
    let restarted = false;
    while (budget > 0) {
      if (this.#cursor === null) {
        if (restarted) break;
        this.#cursor = this.#gates.entries();
        restarted = true;
      }
      const it = this.#cursor.next();
      if (it.done) {
        this.#cursor = null;
        continue;
      }
      budget--;
      this.#check(it.value[0], it.value[1], "recheck", done, listings);
    }
    this.#listMax = LIST_MAX_ENTRIES;
    this.#report(done);
    if (this.#dirty || this.#stale) this.#rewatch();
  }

  /**
   * Check one gate: a missing file that exists now is enforced; a missing
   * directory that exists now moves its entries down; a gate whose anchor
   * vanished moves its entries up.
   */
  #check(
    gate: string,
    slot: Slot,
    via: "watch" | "recheck",
    done: ResolvedEntry[],
    listings: Map<string, Set<string> | null> | null = null,
  ): void {
    // under a parent with many gates, its listing (once per tick) says which
    // gates are still missing, sparing a stat or realpath (and its error) each
    const a = parentOf(gate);
    if (
      listings !== null && (this.#anchors.get(a) ?? 0) >= LIST_MIN_BATCH &&
      this.#absent(listings, a, gate)
    ) return;
    const list = each(slot);
    if (list.every((e) => e.what === gate)) {
      // the gate is the path itself
      const r = this.#tryResolve(gate);
      if (r !== null) {
        const failed = list.filter((e) => !this.#enforce(e, r, via, done));
        if (failed.length === 0) this.#unfile(gate);
        else if (failed.length < list.length) {
          // kept in place (not re-filed at the end, where this tick would meet it again)
          this.#gates.set(gate, failed.length === 1 ? failed[0] : failed);
          this.#pendingPaths -= list.length - failed.length;
        }
      } else if (this.#gone.has(a)) {
        this.#unfile(gate);
        this.#place(list, null, via, done);
      }
      return;
    }
    if (this.#isDir(gate)) {
      this.#unfile(gate);
      this.#place(list, gate, via, done);
    } else if (
      this.#gone.has(a) ||
      // a slot for "/a/b" and "/a/b/c": "/a/b" may exist as a file
      (list.some((e) => e.what === gate) && this.#tryResolve(gate) !== null)
    ) {
      this.#unfile(gate);
      this.#place(list, null, via, done);
    }
  }

  /**
   * File each entry under its gate, resolving it when only the file itself
   * is missing. `from`: a directory known to exist below which every entry
   * lies (walk down from it), or null (walk up from each path's parent).
   */
  #place(
    list: readonly Unresolved[],
    from: string | null,
    via: "watch" | "recheck",
    done: ResolvedEntry[],
  ): void {
    // isDir answers for this call only (entries share their directories)
    const dirs = new Map<string, boolean>();
    const isDir = (p: string) => {
      let v = dirs.get(p);
      if (v === undefined) dirs.set(p, v = this.#isDir(p));
      return v;
    };
    // A large batch: each parent is listed once, and only the names present
    // are resolved (a realpath of a missing path costs a thrown error each).
    // What appears after the listing is seen by the watch or the re-check.
    const listings = this.#listDir && list.length >= LIST_MIN_BATCH
      ? new Map<string, Set<string> | null>()
      : null;
    const absent = (anchor: string, gate: string) => this.#absent(listings, anchor, gate);
    for (const e of list) {
      let anchor: string;
      if (from !== null) {
        anchor = from;
        for (;;) {
          const next = childOf(anchor, e.what);
          if (next === e.what || !isDir(next)) break;
          anchor = next;
        }
      } else {
        anchor = parentOf(e.what);
        // a directory missing from its parent's listing needs no stat
        while (anchor !== "/" && (absent(parentOf(anchor), anchor) || !isDir(anchor))) {
          anchor = parentOf(anchor);
        }
      }
      // the anchor exists (checked above, or "/"): it may be watched again
      if (this.#gone.delete(anchor)) this.#dirty = true;
      const gate = childOf(anchor, e.what);
      if (gate === e.what && !absent(anchor, gate)) {
        const r = this.#tryResolve(gate);
        if (r !== null && this.#enforce(e, r, via, done)) continue;
      }
      this.#file(gate, e);
    }
  }

  /** `gate` (a child of `anchor`) is known missing from `anchor`'s listing (listed once per map). */
  #absent(listings: Map<string, Set<string> | null> | null, anchor: string, gate: string): boolean {
    if (!listings) return false;
    let names = listings.get(anchor);
    if (names === undefined) {
      listings.set(anchor, names = this.#listDir!(anchor, this.#listMax));
    }
    const name = gate.slice(anchor === "/" ? 1 : anchor.length + 1);
    return names !== null && name !== "" && name !== "." && name !== ".." && !names.has(name);
  }

  #tryResolve(path: string): (ResolvedPath & { status: "resolved" }) | null {
    try {
      const r = this.#resolve(path);
      return r.status === "resolved" ? r : null;
    } catch (e) {
      this.#d.onError?.(path, e);
      return null;
    }
  }

  /** Enforce `e` (reported later through `done`); false when enforcing failed (reported now). */
  #enforce(
    e: Unresolved,
    r: { canonical: string; dev: number; ino: number },
    via: "watch" | "recheck",
    done: ResolvedEntry[],
  ): boolean {
    try {
      this.#d.enforce(e, { dev: r.dev, ino: r.ino });
    } catch (err) {
      this.#d.onError?.(e.what, err);
      return false;
    }
    done.push({
      entry: e,
      canonical: r.canonical,
      dev: r.dev,
      ino: r.ino,
      pendingMs: Math.round(this.#now() - this.#since),
      via,
    });
    return true;
  }

  #file(gate: string, e: Unresolved): void {
    const cur = this.#gates.get(gate);
    if (cur === undefined) {
      this.#gates.set(gate, e);
      const a = parentOf(gate);
      const n = this.#anchors.get(a);
      this.#anchors.set(a, (n ?? 0) + 1);
      if (n === undefined) this.#dirty = true;
    } else if (Array.isArray(cur)) cur.push(e);
    else this.#gates.set(gate, [cur, e]);
    this.#pendingPaths++;
  }

  #unfile(gate: string): void {
    const cur = this.#gates.get(gate);
    if (cur === undefined) return;
    this.#gates.delete(gate);
    this.#pendingPaths -= Array.isArray(cur) ? cur.length : 1;
    const a = parentOf(gate);
    const n = (this.#anchors.get(a) ?? 1) - 1;
    if (n > 0) this.#anchors.set(a, n);
    else {
      this.#anchors.delete(a);
      this.#gone.delete(a);
      this.#stale = true;
    }
  }

  /**
   * The anchors with the most gates (earliest filed first among equals),
   * at most maxWatchedDirs, skipping anchors found missing: one pass over
   * the anchors and a small sorted array, then the watch is replaced only
   * if the set changed.
   */
  #wanted(): string[] {
    const max = this.#d.maxWatchedDirs ?? DEFAULT_MAX_WATCHED_DIRS;
    const top: [string, number][] = [];
    for (const [a, n] of this.#anchors) {
      if (this.#gone.has(a)) continue;
      if (top.length === max && n <= top[max - 1][1]) continue;
      let i = top.length;
      while (i > 0 && top[i - 1][1] < n) i--;
      top.splice(i, 0, [a, n]);
      if (top.length > max) top.pop();
    }
    const out: string[] = [];
    for (const [a] of top) {
      if (this.#isDir(a)) out.push(a);
      else this.#gone.add(a);
    }
    return out.sort();
  }

  #rewatch(): void {
    if (this.#stopped) return;
    this.#dirty = this.#stale = false;
    const want = this.#wanted();
    if (want.join("\0") === this.#watchedDirs.join("\0") && (this.#watcher || want.length === 0)) {
      return;
    }
    const before = this.#watchedDirs;
    this.#watcher?.close();
    this.#watcher = null;
    this.#watchedDirs = want;
    if (want.length === 0) return;
    let w: FsWatcherLike;
    try {
      w = (this.#d.watchFs ?? ((p) => Deno.watchFs(p, { recursive: false })))(want);
    } catch (e) {
      this.#d.onError?.(want.join(", "), e);
      this.#watchedDirs = [];
      return;
    }
    this.#watcher = w;
    void this.#pump(w);
    // what appeared in a newly watched directory between its last check and
    // the new watch: its gates (at most the re-check budget of them looked at)
    const added = new Set(want.filter((d) => !before.includes(d)));
    if (added.size === 0) return;
    const done: ResolvedEntry[] = [];
    let budget = this.#d.recheckBudget ?? DEFAULT_RECHECK_BUDGET;
    const listings = this.#listDir ? new Map<string, Set<string> | null>() : null;
    for (const [gate, slot] of this.#gates) {
      if (budget-- <= 0) break;
      const a = parentOf(gate);
      if (added.has(a) && !this.#absent(listings, a, gate)) {
        this.#check(gate, slot, "recheck", done);
      }
    }
    this.#report(done);
    if (this.#dirty) this.#rewatch();
  }

  async #pump(w: FsWatcherLike): Promise<void> {
    try {
      for await (const ev of w) {
        if (this.#stopped || w !== this.#watcher) return;
        if (ev.kind === "access") continue;
        const done: ResolvedEntry[] = [];
        for (const t of ev.paths) {
          if (ev.kind === "remove" || ev.kind === "rename") {
            // a watched directory itself removed or moved: rewatched on the next tick
            if (this.#watchedDirs.includes(t)) this.#stale = true;
            if (ev.kind === "remove") continue;
          }
          const slot = this.#gates.get(t);
          if (slot !== undefined) this.#check(t, slot, "watch", done);
        }
        this.#report(done);
        // a gate moved to a directory not watched yet: rewatch now
        if (this.#dirty && !this.#stopped) this.#rewatch();
      }
    } catch (e) {
      if (!this.#stopped && w === this.#watcher) this.#d.onError?.("watch", e);
    }
  }

  /** Stop watching and re-checking; safe to call twice. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) (this.#d.clearInterval ?? clearInterval)(this.#timer);
    this.#timer = null;
    this.#watcher?.close();
    this.#watcher = null;
    this.#watchedDirs = [];
    this.#cursor = null;
  }

  [Symbol.dispose](): void {
    this.stop();
  }
}

/**
 * The `enforce` of UnresolvedWatcher for the live object's maps: the
 * entry's inode rule (deny or protect, rule id = its policy line) in the
 * live generation, merged with a rule the inode already has, and the file
 * switch on.
 */
export function pathRuleEnforcer(
  maps: (name: MapName) => BpfMap,
): (entry: Unresolved, r: { dev: number; ino: number }) => void {
  return (entry, r) => {
    const gen = liveGeneration(maps);
    const m = maps("aegis_deny_inode");
    const key = inodeKey(r.dev, r.ino, gen);
    const prev = m.lookup(key);
    const prevFlags = prev ? new DataView(prev.buffer).getUint16(4, true) : 0;
    const flag = entry.section === "protect_path" ? AEGIS_RULE_PROTECT : AEGIS_RULE_DENY;
    m.update(key, ruleValue(entry.line, prevFlags | flag, AEGIS_RT_INODE));
    const pol = maps("aegis_policy");
    const cur = pol.lookup(u32Key(gen));
    const flags = cur ? Number(new DataView(cur.buffer).getBigUint64(0, true)) : 0;
    if ((flags & AEGIS_POL_FILE_RULES) === 0) {
      pol.update(u32Key(gen), policyValue(flags | AEGIS_POL_FILE_RULES));
    }
  };
}
