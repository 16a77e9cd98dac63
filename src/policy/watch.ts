/**
 * Paths named by a policy that do not exist yet ("unresolved", reported by
 * compilePolicy) are enforced as soon as they appear.
 *
 * UnresolvedWatcher watches the nearest existing parent directory of each
 * such path (one non-recursive inotify watch per directory, at most
 * `maxWatchedDirs` of them); when something is created or renamed there it
 * resolves the affected paths at once, writes their rule into the live
 * generation (`enforce`, e.g. pathRuleEnforcer) and reports them
 * (`onResolved`). When a missing intermediate directory appears, the watch
 * moves down to it. A periodic re-check (`recheckMs`, default 5 s) covers
 * what watching cannot see: paths beyond the watch budget, symlinks that
 * start pointing somewhere, file systems without inotify events.
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
import { liveGeneration } from "./apply.ts";
import type { Unresolved } from "./compile.ts";

/** Sections whose unresolved entries are paths this watcher can enforce. */
export const WATCHED_SECTIONS: readonly string[] = ["deny_path", "protect_path"];

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
  /** enforcing or watching failed (the entry stays pending; retried on the next check) */
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
  /** periodic re-check interval (default 5000 ms; 0 = none) */
  recheckMs?: number;
  /** most directories watched at once (default 64) */
  maxWatchedDirs?: number;
}

function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i <= 0 ? "/" : p.slice(0, i);
}

function defaultIsDir(p: string): boolean {
  try {
    return Deno.statSync(p).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Watches the unresolved path entries of the applied policy. Construct,
 * start(), and stop() when the policy is replaced (or construct a new one
 * per apply).
 */
export class UnresolvedWatcher {
  #d: UnresolvedWatcherDeps;
  #pending: { entry: Unresolved; since: number; dir: string | null }[];
  #watcher: FsWatcherLike | null = null;
  #watchedDirs: string[] = [];
  #timer: number | null = null;
  #stopped = false;
  #now: () => number;

  constructor(entries: readonly Unresolved[], deps: UnresolvedWatcherDeps) {
    this.#d = deps;
    this.#now = deps.now ?? (() => performance.now());
    const t = this.#now();
    this.#pending = entries.map((entry) => ({ entry, since: t, dir: null }));
  }

  /** Check once, then watch and re-check periodically. Returns what the first check resolved. */
  start(): ResolvedEntry[] {
    const first = this.checkNow("recheck");
    this.#rewatch();
    const ms = this.#d.recheckMs ?? 5000;
    if (ms > 0 && !this.#stopped) {
      const si = this.#d.setInterval ?? ((f, t) => setInterval(f, t) as unknown as number);
      this.#timer = si(() => {
        this.checkNow("recheck");
        this.#rewatch();
      }, ms);
    }
    return first;
  }

  /** Entries still missing. */
  pending(): PendingEntry[] {
    return this.#pending.map((p) => ({ ...p.entry, watching: p.dir }));
  }

  /** Number of entries still missing (aegisbpf_policy_unresolved_paths). */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /** Directories watched now. */
  get watchedDirs(): readonly string[] {
    return this.#watchedDirs;
  }

  /** Resolve and enforce every pending path entry that exists now. */
  checkNow(via: "watch" | "recheck" = "recheck", only?: (dir: string) => boolean): ResolvedEntry[] {
    const resolve = this.#d.resolvePath ?? resolveRulePath;
    const done: ResolvedEntry[] = [];
    for (const p of this.#pending) {
      if (!WATCHED_SECTIONS.includes(p.entry.section)) continue;
      if (only && !only(p.entry.what)) continue;
      let r: ResolvedPath;
      try {
        r = resolve(p.entry.what);
      } catch (e) {
        this.#d.onError?.(p.entry.what, e);
        continue;
      }
      if (r.status !== "resolved") continue;
      try {
        this.#d.enforce(p.entry, { dev: r.dev, ino: r.ino });
      } catch (e) {
        this.#d.onError?.(p.entry.what, e);
        continue;
      }
      done.push({
        entry: p.entry,
        canonical: r.canonical,
        dev: r.dev,
        ino: r.ino,
        pendingMs: Math.round(this.#now() - p.since),
        via,
      });
    }
    if (done.length > 0) {
      const gone = new Set(done.map((d) => d.entry));
      this.#pending = this.#pending.filter((p) => !gone.has(p.entry));
      for (const d of done) this.#d.onResolved?.(d);
    }
    return done;
  }

  /** The nearest existing parent directory of every pending path, within the budget. */
  #wantedDirs(): string[] {
    const isDir = this.#d.isDir ?? defaultIsDir;
    const max = this.#d.maxWatchedDirs ?? 64;
    const dirs: string[] = [];
    for (const p of this.#pending) {
      p.dir = null;
      if (!WATCHED_SECTIONS.includes(p.entry.section)) continue;
      let d = parentOf(p.entry.what);
      while (d !== "/" && !isDir(d)) d = parentOf(d);
      if (!dirs.includes(d)) {
        if (dirs.length >= max) continue;
        dirs.push(d);
      }
      p.dir = d;
    }
    return dirs.sort();
  }

  #rewatch(): void {
    if (this.#stopped) return;
    const want = this.#wantedDirs();
    if (want.join("\0") === this.#watchedDirs.join("\0") && (this.#watcher || want.length === 0)) {
      return;
    }
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
    // what appeared between the last check and the new watch
    if (this.checkNow("recheck").length > 0) this.#rewatch();
  }

  async #pump(w: FsWatcherLike): Promise<void> {
    try {
      for await (const ev of w) {
        if (this.#stopped || w !== this.#watcher) return;
        if (
          ev.kind !== "create" && ev.kind !== "rename" && ev.kind !== "modify" &&
          ev.kind !== "other"
        ) {
          continue;
        }
        const touched = ev.paths;
        const hit = (what: string) =>
          touched.some((t) =>
            what === t || what.startsWith(`${t}/`) || parentOf(what) === parentOf(t)
          );
        this.checkNow("watch", hit);
        // a new intermediate directory: watch deeper
        if (touched.some((t) => this.#pending.some((p) => p.entry.what.startsWith(`${t}/`)))) {
          this.#rewatch();
        }
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
  maps: (name: string) => BpfMap,
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
