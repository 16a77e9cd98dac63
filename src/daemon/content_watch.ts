/**
 * After a content scan (policy/content_scan.ts), the scanned directories
 * are watched: a file created, written or renamed into one of them is
 * hashed once its writes have been quiet for `quietMs`, and a denied
 * content becomes an inode deny rule at once (`onMatch`), as if the scan
 * had found it. Without this a copy placed in /usr/bin after the apply
 * would run until the next apply.
 *
 * Symlinks created after the apply are not followed (the apply's scan
 * follows them). Bounded: at most `maxPending` paths wait at once (more are reported once
 * through onError and left to the next apply); one file is hashed at a time.
 * A directory that does not exist when watching starts is not watched.
 *
 * @module
 */
import {
  checkFile,
  type ContentMatch,
  DEFAULT_MAX_FILE_BYTES,
  denoScanFs,
  type ScanFs,
} from "../policy/content_scan.ts";

/** A watch of some directories (Deno.watchFs, non-recursive, in the daemon). */
export interface DirWatch extends AsyncIterable<{ kind: string; paths: string[] }> {
  close(): void;
}

export interface ContentWatchOptions {
  dirs: readonly string[];
  /** sha256 → its [deny_binary_hash] line */
  denied: ReadonlyMap<string, number>;
  onMatch: (m: ContentMatch) => void;
  onError: (what: string, e: unknown) => void;
  fs?: ScanFs;
  watch?: (dirs: string[]) => DirWatch;
  realPath?: (dir: string) => string | null;
  quietMs?: number;
  maxPending?: number;
  maxFileBytes?: number;
}

function defaultRealPath(dir: string): string | null {
  try {
    return Deno.realPathSync(dir);
  } catch {
    return null;
  }
}

export class ContentWatcher {
  readonly #o: ContentWatchOptions;
  readonly #fs: ScanFs;
  readonly #dirs = new Set<string>();
  readonly #pending = new Set<string>();
  #watch: DirWatch | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #busy = false;
  #stopped = false;
  #warnedFull = false;
  /** files hashed since start (tests, logs) */
  hashed = 0;

  constructor(o: ContentWatchOptions) {
    this.#o = o;
    this.#fs = o.fs ?? denoScanFs;
  }

  /** The directories watched (real paths, each once). */
  get dirs(): string[] {
    return [...this.#dirs];
  }

  start(): void {
    const real = this.#o.realPath ?? defaultRealPath;
    for (const d of this.#o.dirs) {
      const r = real(d);
      if (r !== null) this.#dirs.add(r);
    }
    if (this.#dirs.size === 0) return;
    try {
      this.#watch = (this.#o.watch ??
        ((dirs) => Deno.watchFs(dirs, { recursive: false })))([...this.#dirs]);
    } catch (e) {
      this.#o.onError("content scan: cannot watch the scanned directories", e);
      return;
    }
    this.#loop(this.#watch);
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#pending.clear();
    try {
      this.#watch?.close();
    } catch { /* closed already */ }
    this.#watch = null;
  }

  async #loop(w: DirWatch): Promise<void> {
    try {
      for await (const ev of w) {
        if (this.#stopped) return;
        if (ev.kind === "access" || ev.kind === "remove") continue;
        for (const p of ev.paths) this.#note(p);
      }
    } catch (e) {
      if (!this.#stopped) this.#o.onError("content scan: the directory watch ended", e);
    }
  }

  /** A path an event named: queued when it is directly inside a watched directory. */
  #note(path: string): void {
    const slash = path.lastIndexOf("/");
    if (slash <= 0 || !this.#dirs.has(path.slice(0, slash))) return;
    if (!this.#pending.has(path) && this.#pending.size >= (this.#o.maxPending ?? 10_000)) {
      if (!this.#warnedFull) {
        this.#warnedFull = true;
        this.#o.onError(
          "content scan",
          new Error(
            `more than ${this.#o.maxPending ?? 10_000} changed files waiting; ` +
              "the rest are checked at the next apply",
          ),
        );
      }
      return;
    }
    this.#pending.add(path);
    clearTimeout(this.#timer); // hashed once the writes are quiet
    this.#timer = setTimeout(() => this.#drain(), this.#o.quietMs ?? 300);
  }

  async #drain(): Promise<void> {
    if (this.#busy || this.#stopped) return;
    this.#busy = true;
    try {
      while (this.#pending.size > 0 && !this.#stopped) {
        const path: string = this.#pending.values().next().value!;
        this.#pending.delete(path);
        await this.#check(path);
      }
      this.#warnedFull = false;
    } finally {
      this.#busy = false;
    }
    // a path queued while a file was hashed is taken by the loop above (its
    // timer found the drain busy and returned)
  }

  async #check(path: string): Promise<void> {
    // a symlink made after the apply is not followed: whoever can write in a
    // scanned directory could otherwise make the daemon read any file, again
    // and again (the apply's scan follows them; docs/policy.md "Scan paths")
    if (this.#fs.isSymlink(path)) return;
    let st;
    try {
      st = this.#fs.stat(path);
    } catch (e) {
      this.#o.onError(`content scan: ${path}`, e);
      return;
    }
    if (st === null || !st.isFile) return;
    const r = await checkFile(
      path,
      st.size,
      this.#o.denied,
      this.#fs,
      this.#o.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES,
    );
    if (typeof r === "string") {
      this.#o.onError("content scan: not scanned", new Error(r));
      return;
    }
    this.hashed++;
    if (r.match && !this.#stopped) this.#o.onMatch(r.match);
  }
}
