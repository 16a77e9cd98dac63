/**
 * cgroup id → cgroup path, for the `cgroup_path` field of events.
 *
 * On cgroup v2 a cgroup's id (what bpf_get_current_cgroup_id() returns and
 * records carry as `cgid`) is the inode number of its directory under the
 * cgroup2 mount. The resolver walks that tree to map inode numbers to
 * paths, relative to the mount and starting with "/" (the same text as the
 * "0::" line of /proc/<pid>/cgroup), e.g. "/system.slice/ssh.service".
 *
 * Bounded in memory and in work, because it runs on the event path:
 *  - answers are kept in an LRU of `capacity` entries;
 *  - a miss triggers at most one rescan per `rescanIntervalMs`: under load,
 *    events from an unknown cgroup get `null` until the next allowed
 *    rescan, never a tree walk per event;
 *  - a rescan visits at most `maxScanDirs` directories.
 *
 * Unknown ids (a cgroup created and removed between two scans, or not under
 * the mount) resolve to null.
 *
 * @module
 */
import { cgroup2MountFrom, MOUNTINFO_PATH } from "../util/mountinfo.ts";

/** This host's cgroup2 mount point (default /sys/fs/cgroup). */
export function hostCgroup2Mount(): string {
  try {
    return cgroup2MountFrom(Deno.readTextFileSync(MOUNTINFO_PATH)) ?? "/sys/fs/cgroup";
  } catch {
    return "/sys/fs/cgroup";
  }
}

export interface CgroupResolverOptions {
  /** cgroup2 mount point (default: hostCgroup2Mount()). */
  root?: string;
  /** LRU entries kept (default 4096). */
  capacity?: number;
  /** Minimum time between two rescans, ms (default 1000). */
  rescanIntervalMs?: number;
  /** Directories one rescan may visit (default 65536). */
  maxScanDirs?: number;
  /** Clock in ms (tests). */
  now?: () => number;
}

export interface CgroupResolverStats {
  hits: number;
  misses: number;
  rescans: number;
  /** misses answered null without a rescan (interval not over) */
  throttled: number;
  /** directories visited by the last rescan */
  lastScanDirs: number;
  /** rescans cut at maxScanDirs */
  truncatedScans: number;
}

/** Resolves cgroup ids to paths; see the module comment. */
export class CgroupPathResolver {
  readonly root: string;
  readonly stats: CgroupResolverStats = {
    hits: 0,
    misses: 0,
    rescans: 0,
    throttled: 0,
    lastScanDirs: 0,
    truncatedScans: 0,
  };
  #lru = new Map<number, string>();
  #capacity: number;
  #interval: number;
  #maxDirs: number;
  #now: () => number;
  #lastScan = -Infinity;
  /** one-entry shortcut: records come in runs from the same cgroup */
  #lastId = -1;
  #lastPath: string | null = null;

  constructor(opts: CgroupResolverOptions = {}) {
    this.root = (opts.root ?? hostCgroup2Mount()).replace(/\/+$/, "") || "/";
    this.#capacity = Math.max(1, opts.capacity ?? 4096);
    this.#interval = opts.rescanIntervalMs ?? 1000;
    this.#maxDirs = opts.maxScanDirs ?? 65536;
    this.#now = opts.now ?? (() => performance.now());
  }

  /**
   * Path of cgroup `cgid`, or null when it is not known (also for an id past
   * 2^53: directory inode numbers are read as numbers, which cannot hold it).
   */
  resolve(cgid: number | bigint): string | null {
    if (typeof cgid !== "number") return null;
    if (cgid === this.#lastId && this.#lastPath !== null) {
      this.stats.hits++;
      return this.#lastPath;
    }
    let path = this.#lru.get(cgid);
    if (path !== undefined) {
      this.stats.hits++;
      // refresh recency
      this.#lru.delete(cgid);
      this.#lru.set(cgid, path);
    } else {
      this.stats.misses++;
      const t = this.#now();
      if (t - this.#lastScan < this.#interval) {
        this.stats.throttled++;
        return null;
      }
      this.#lastScan = t;
      path = this.#rescan(cgid);
      if (path === undefined) return null;
    }
    this.#lastId = cgid;
    this.#lastPath = path;
    return path;
  }

  /** Entries currently cached. */
  get size(): number {
    return this.#lru.size;
  }

  #put(id: number, path: string): void {
    this.#lru.delete(id);
    this.#lru.set(id, path);
    if (this.#lru.size > this.#capacity) {
      // Map iterates in insertion order: the first key is the least recent
      const oldest = this.#lru.keys().next().value as number;
      this.#lru.delete(oldest);
    }
  }

  /**
   * Walk the tree (breadth first, bounded), refresh every cached entry
   * and add new ones (up to capacity); answer `want`'s path.
   */
  #rescan(want: number): string | undefined {
    this.stats.rescans++;
    const found = new Map<number, string>();
    const queue: string[] = [""];
    let dirs = 0;
    let truncated = false;
    for (let qi = 0; qi < queue.length; qi++) {
      if (dirs >= this.#maxDirs) {
        this.stats.truncatedScans++;
        truncated = true;
        break;
      }
      const rel = queue[qi];
      const abs = this.root + rel;
      dirs++;
      let ino: number | null;
      try {
        ino = Deno.statSync(abs).ino;
      } catch {
        continue; // removed while we walked
      }
      if (ino !== null) found.set(ino, rel === "" ? "/" : rel);
      try {
        for (const e of Deno.readDirSync(abs)) {
          if (e.isDirectory) queue.push(`${rel}/${e.name}`);
        }
      } catch {
        // removed or unreadable: its own entry is still good
      }
    }
    this.stats.lastScanDirs = dirs;
    // Drop cached entries whose cgroup is gone (ids are not reused while
    // the kernel runs, but a stale entry wastes a slot); a cut scan proves
    // nothing about what it did not visit.
    for (const id of [...this.#lru.keys()]) {
      const p = found.get(id);
      if (p !== undefined) this.#lru.set(id, p);
      else if (!truncated) this.#lru.delete(id);
    }
    if (!truncated && this.#lastId !== -1 && !found.has(this.#lastId)) {
      this.#lastId = -1;
      this.#lastPath = null;
    }
    for (const [id, p] of found) {
      if (this.#lru.size >= this.#capacity) break;
      if (!this.#lru.has(id)) this.#lru.set(id, p);
    }
    const path = found.get(want);
    if (path !== undefined) this.#put(want, path);
    return path;
  }
}
