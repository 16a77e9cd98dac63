/**
 * Event sinks (`--log=stdout|file:PATH`): where JSON event lines go.
 *
 * A sink buffers lines in memory and writes them in chunks (many lines per
 * write syscall) from an asynchronous pump, so `write()` only appends to
 * an array: it never waits for the disk or the stdout reader and never
 * throws. The pump flushes when a chunk is full, on a short timer, and on
 * `flush()`/`close()`. One write is in flight at a time, so lines keep
 * their order.
 *
 * Back-pressure: when the lines waiting exceed `maxPendingBytes` (the
 * writer is slower than the events), new lines are dropped and counted in
 * `stats.dropped`; the agent never slows down for its consumer.
 *
 * File sinks rotate by size: before a chunk would take PATH past
 * `maxBytes`, PATH.N-1 → PATH.N … PATH → PATH.1 and a new PATH is started
 * (files always end on a whole line; at most `keep` rotated files are
 * kept). Chunks are at most a quarter of `maxBytes` (counted in UTF-16
 * units), so only a single huge line or much non-ASCII text can take a
 * file past `maxBytes`. Files are created 0600 (events name users, paths and commands)
 * unless `perms` says otherwise (at most 0660 and a group: file_perms.ts),
 * and every open (create, rotation, reopen after SIGHUP) sets that mode and
 * group again; a change to an existing file's mode or group is reported
 * through `onNotice`. The parent directory must exist; a symlink or a
 * non-regular file at PATH is refused.
 *
 * stdout: EPIPE (the reader went away) closes the sink's stdout for good;
 * later lines are counted as dropped and enforcement goes on.
 *
 * @module
 */
import { AegisError, UsageError } from "../errors.ts";
import { isStdoutClosed } from "../log.ts";
import {
  DEFAULT_EVENT_FILE_MODE,
  type EventFilePerms,
  eventFilePerms,
  octal,
} from "./file_perms.ts";

export interface SinkStats {
  /** lines written */
  written: number;
  /** bytes written */
  bytes: number;
  /** lines dropped: back-pressure, write errors, closed stdout, after close */
  dropped: number;
  rotations: number;
  /** failed write or rotation attempts */
  errors: number;
}

export interface EventSink {
  /** Queue one event line (JSON text without the trailing newline). Never throws. */
  write(line: string): void;
  /** Resolve once every line queued so far was written (or dropped). */
  flush(): Promise<void>;
  /** Flush, then release the file. Later writes are dropped. Safe to call twice. */
  close(): Promise<void>;
  /**
   * Open PATH again before the next write (SIGHUP after logrotate moved it
   * away); nothing for stdout. Never throws: a PATH that cannot be opened
   * is reported through onError and the current file is kept.
   */
  reopen(): void;
  readonly stats: SinkStats;
  /** "stdout" or "file:PATH" */
  readonly spec: string;
  /** Text waiting to be written (UTF-16 units). */
  readonly backlog: number;
  /**
   * The backlog is past half its cap: a producer that can wait (the ring
   * drain) should leave records in the kernel ring until this clears, so
   * overload shows up as counted ring-buffer drops, not sink drops.
   */
  readonly saturated: boolean;
}

/** Where a sink's bytes go (injectable for tests). */
export interface SinkWriter {
  write(p: Uint8Array): Promise<number>;
}

export interface SinkOptions {
  /** Rotate before PATH would exceed this many bytes (default 64 MiB). */
  maxBytes?: number;
  /** Rotated files kept: PATH.1 … PATH.keep (default 5). */
  keep?: number;
  /** Bytes per write (default 256 KiB). */
  chunkBytes?: number;
  /** Waiting text beyond this drops new lines (default 16 MiB, in UTF-16 units). */
  maxPendingBytes?: number;
  /** Flush timer, ms (default 50). */
  flushIntervalMs?: number;
  /** Instead of Deno.stdout (tests). */
  stdout?: SinkWriter;
  /** Told about each write error (rate-limit it yourself). */
  onError?: (e: unknown) => void;
  /**
   * The event file's mode (default 0600) and group (`--log-file-mode`,
   * `--log-file-group`, parsed by file_perms.ts); refused for stdout.
   */
  fileMode?: number;
  fileGid?: number;
  /** Told when an open changed an existing file's mode or group (never silent). */
  onNotice?: (message: string) => void;
}

export const DEFAULT_MAX_BYTES = 64 << 20;
export const DEFAULT_KEEP = 5;

const enc = new TextEncoder();

/** Parse `--log`: "stdout" (default) or "file:PATH" (absolute). */
export function parseSinkSpec(spec: string): { kind: "stdout" } | { kind: "file"; path: string } {
  if (spec === "" || spec === "stdout") return { kind: "stdout" };
  if (spec.startsWith("file:")) {
    const path = spec.slice(5);
    if (!path.startsWith("/") || path.endsWith("/") || path.includes("\0")) {
      throw new UsageError(
        `--log "${spec}": file:PATH needs an absolute path to a file, e.g. ` +
          `file:/var/log/aegisbpf/events.jsonl`,
      );
    }
    return { kind: "file", path };
  }
  throw new UsageError(
    `--log "${spec}": unknown event sink; use "stdout" or "file:/absolute/path"`,
  );
}

function positive(name: string, v: number | undefined, def: number, min: number): number {
  if (v === undefined) return def;
  if (!Number.isSafeInteger(v) || v < min) {
    throw new UsageError(`event sink option ${name}=${v}: must be an integer >= ${min}`);
  }
  return v;
}

/**
 * Open the sink named by `spec` (the `--log` value). Throws an AegisError
 * (USAGE, or SINK_OPEN naming the file and what to do) before anything is
 * written; afterwards the sink never throws.
 */
export function openSink(spec = "stdout", opts: SinkOptions = {}): EventSink {
  const parsed = parseSinkSpec(spec);
  const perms = eventFilePerms(parsed.kind === "file", opts.fileMode, opts.fileGid);
  const cfg = {
    maxBytes: positive("maxBytes", opts.maxBytes, DEFAULT_MAX_BYTES, 4096),
    keep: positive("keep", opts.keep, DEFAULT_KEEP, 1),
    chunkBytes: positive("chunkBytes", opts.chunkBytes, 256 << 10, 1),
    maxPending: positive("maxPendingBytes", opts.maxPendingBytes, 16 << 20, 1),
    flushMs: positive("flushIntervalMs", opts.flushIntervalMs, 50, 1),
  };
  if (parsed.kind === "stdout") {
    return new BufferedSink("stdout", new StdoutTarget(opts.stdout ?? Deno.stdout), cfg, opts);
  }
  // chunks well below the rotation size, so a file never ends far past it
  cfg.chunkBytes = Math.max(1, Math.min(cfg.chunkBytes, Math.floor(cfg.maxBytes / 4)));
  return new BufferedSink(
    spec,
    FileTarget.open(spec, parsed.path, cfg, perms, opts.onError, opts.onNotice),
    cfg,
    opts,
  );
}

interface Target {
  /** Write all of `bytes`; throw on failure. */
  write(bytes: Uint8Array): Promise<void>;
  /** Open the destination again before the next write (file sinks). */
  reopen(): void;
  /** false once the target cannot take more (closed stdout). */
  readonly usable: boolean;
  close(): void;
  rotations: number;
  /** rotations that failed (the file kept growing instead) */
  rotationErrors: number;
}

class StdoutTarget implements Target {
  #w: SinkWriter;
  #closed = false;
  rotations = 0;
  rotationErrors = 0;
  constructor(w: SinkWriter) {
    this.#w = w;
  }
  get usable(): boolean {
    return !this.#closed && !(this.#w === Deno.stdout && isStdoutClosed());
  }
  async write(bytes: Uint8Array): Promise<void> {
    try {
      let off = 0;
      while (off < bytes.length) off += await this.#w.write(bytes.subarray(off));
    } catch (e) {
      if (e instanceof Deno.errors.BrokenPipe) this.#closed = true;
      throw e;
    }
  }
  close(): void {}
  reopen(): void {}
}

class FileTarget implements Target {
  #path: string;
  #file: Deno.FsFile;
  #size: number;
  #maxBytes: number;
  #keep: number;
  #onError: ((e: unknown) => void) | undefined;
  #perms: EventFilePerms = { mode: DEFAULT_EVENT_FILE_MODE, gid: null };
  #onNotice: ((message: string) => void) | undefined;
  rotations = 0;
  rotationErrors = 0;
  readonly usable = true;
  #reopen = false;

  private constructor(
    path: string,
    file: Deno.FsFile,
    size: number,
    maxBytes: number,
    keep: number,
  ) {
    this.#path = path;
    this.#file = file;
    this.#size = size;
    this.#maxBytes = maxBytes;
    this.#keep = keep;
  }

  static open(
    spec: string,
    path: string,
    cfg: { maxBytes: number; keep: number },
    perms: EventFilePerms,
    onError?: (e: unknown) => void,
    onNotice?: (message: string) => void,
  ): FileTarget {
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    let dirSt: Deno.FileInfo;
    try {
      dirSt = Deno.statSync(dir);
    } catch (e) {
      throw new AegisError(
        "SINK_OPEN",
        `--log "${spec}": the directory "${dir}" does not exist or cannot be read ` +
          `(${(e as Error).message}); create it (mode 0700, root) first`,
        { cause: e },
      );
    }
    if (!dirSt.isDirectory) {
      throw new AegisError("SINK_OPEN", `--log "${spec}": "${dir}" is not a directory`);
    }
    if (perms.mode !== DEFAULT_EVENT_FILE_MODE || perms.gid !== null) {
      // a group may read the file now: nobody but root may swap what is at PATH
      // (the mode and group are set by path; Deno has no fchmod/fchown)
      if (dirSt.mode !== null && (dirSt.mode & 0o022) !== 0) {
        throw new AegisError(
          "SINK_OPEN",
          `--log "${spec}": "${dir}" is writable by its group or by others (mode ` +
            `${octal(dirSt.mode)}); with --log-file-mode/--log-file-group the directory must ` +
            `be writable by root only (e.g. 0750 root:GROUP)`,
        );
      }
    }
    const file = openEventFile(spec, path, perms, onNotice);
    const t = new FileTarget(path, file, file.statSync().size, cfg.maxBytes, cfg.keep);
    t.#onError = onError;
    t.#perms = perms;
    t.#onNotice = onNotice;
    return t;
  }

  reopen(): void {
    // done at the next write: one write is in flight at a time, so the old
    // file is never closed under a pending write
    this.#reopen = true;
  }

  #reopenNow(): void {
    this.#reopen = false;
    let next: Deno.FsFile;
    try {
      next = openEventFile(`file:${this.#path}`, this.#path, this.#perms, this.#onNotice);
    } catch (e) {
      this.#onError?.(e);
      return; // keep writing where we were rather than lose events
    }
    this.#file.close();
    this.#file = next;
    this.#size = next.statSync().size;
  }

  async write(bytes: Uint8Array): Promise<void> {
    if (this.#reopen) this.#reopenNow();
    if (this.#size > 0 && this.#size + bytes.length > this.#maxBytes) {
      try {
        this.#rotate();
      } catch (e) {
        // keep appending to the current file rather than lose events
        this.rotationErrors++;
        try {
          this.#onError?.(e);
        } catch { /* ignore */ }
      }
    }
    let off = 0;
    try {
      while (off < bytes.length) off += await this.#file.write(bytes.subarray(off));
    } finally {
      this.#size += off;
    }
  }

  #rotate(): void {
    const p = this.#path;
    try {
      Deno.removeSync(`${p}.${this.#keep}`);
    } catch { /* not there */ }
    for (let i = this.#keep - 1; i >= 1; i--) {
      try {
        Deno.renameSync(`${p}.${i}`, `${p}.${i + 1}`);
      } catch { /* not there */ }
    }
    // Open the successor before giving up the current file: if it cannot
    // be created we keep appending where we were.
    Deno.renameSync(p, `${p}.1`);
    let next: Deno.FsFile;
    try {
      next = openEventFile(`file:${p}`, p, this.#perms, this.#onNotice);
    } catch (e) {
      Deno.renameSync(`${p}.1`, p);
      throw e;
    }
    this.#file.close();
    this.#file = next;
    this.#size = 0;
    this.rotations++;
  }

  close(): void {
    try {
      this.#file.close();
    } catch { /* closed */ }
  }
}

/**
 * Open (append) or create PATH with `perms` (mode, and group when set);
 * refuse symlinks and non-regular files. An existing file gets the mode and
 * group too, narrowed or widened to what is configured, and `onNotice` says
 * so: a file is never loosened silently.
 */
function openEventFile(
  spec: string,
  path: string,
  perms: EventFilePerms = { mode: DEFAULT_EVENT_FILE_MODE, gid: null },
  onNotice?: (message: string) => void,
): Deno.FsFile {
  let existed = false;
  try {
    const st = Deno.lstatSync(path);
    if (!st.isFile) {
      throw new AegisError(
        "SINK_OPEN",
        `--log "${spec}": "${path}" exists and is not a regular file ` +
          `(${st.isSymlink ? "a symlink" : "a directory or device"}); name a plain file`,
      );
    }
    existed = true;
  } catch (e) {
    if (e instanceof AegisError) throw e;
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new AegisError("SINK_OPEN", `--log "${spec}": cannot stat "${path}": ${e}`, {
        cause: e,
      });
    }
  }
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { append: true, create: true, mode: perms.mode });
  } catch (e) {
    throw new AegisError(
      "SINK_OPEN",
      `--log "${spec}": cannot open "${path}" for appending: ${(e as Error).message}`,
      { cause: e },
    );
  }
  try {
    const before = f.statSync();
    if (!before.isFile) throw new Error("it is not a regular file");
    const changes: string[] = [];
    // the umask narrows the mode open() gives; an existing file may differ either way
    if (before.mode === null || (before.mode & 0o7777) !== perms.mode) {
      Deno.chmodSync(path, perms.mode);
      changes.push(
        `mode ${before.mode === null ? "?" : octal(before.mode)} -> ${octal(perms.mode)}`,
      );
    }
    if (perms.gid !== null && before.gid !== perms.gid) {
      try {
        Deno.chownSync(path, null, perms.gid);
      } catch (e) {
        if (!(e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable)) {
          throw e;
        }
        // the systemd unit keeps no CAP_CHOWN (docs/install.md): a file inherits
        // the group of a setgid directory, and a group the agent is in needs no capability
        throw new Error(
          `${e.message}; without CAP_CHOWN the agent can give a file only a group it is in: ` +
            `make the directory setgid with that group (chgrp GROUP DIR; chmod 2750 DIR) or ` +
            `add SupplementaryGroups=GROUP to the unit (docs/observability.md)`,
        );
      }
      changes.push(`group ${before.gid} -> ${perms.gid}`);
    }
    // by path: make sure it was this open file that changed
    const after = f.statSync();
    if (
      after.mode === null || (after.mode & 0o7777) !== perms.mode ||
      (perms.gid !== null && after.gid !== perms.gid)
    ) {
      throw new Error(
        `its mode or group did not take (mode ${after.mode === null ? "?" : octal(after.mode)}, ` +
          `gid ${after.gid}): was the file replaced meanwhile?`,
      );
    }
    if (existed && changes.length > 0) {
      try {
        onNotice?.(
          `event file ${path}: ${changes.join(", ")} (the configured event file mode ` +
            `and group; --log-file-mode, --log-file-group)`,
        );
      } catch { /* a reporting hook must not break the sink */ }
    }
    return f;
  } catch (e) {
    f.close();
    throw new AegisError(
      "SINK_OPEN",
      `--log "${spec}": cannot give "${path}" mode ${octal(perms.mode)}` +
        `${perms.gid !== null ? ` and group ${perms.gid}` : ""}: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

class BufferedSink implements EventSink {
  readonly spec: string;
  readonly stats: SinkStats = { written: 0, bytes: 0, dropped: 0, rotations: 0, errors: 0 };
  #target: Target;
  #cfg: { chunkBytes: number; maxPending: number; flushMs: number };
  #onError: ((e: unknown) => void) | undefined;
  #pending: string[] = [];
  /** UTF-16 units waiting (lines + newlines) */
  #pendingUnits = 0;
  #pump: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(
    spec: string,
    target: Target,
    cfg: { chunkBytes: number; maxPending: number; flushMs: number },
    opts: SinkOptions,
  ) {
    this.spec = spec;
    this.#target = target;
    this.#cfg = cfg;
    this.#onError = opts.onError;
  }

  get backlog(): number {
    return this.#pendingUnits;
  }

  reopen(): void {
    this.#target.reopen();
  }

  get saturated(): boolean {
    return this.#pendingUnits >= this.#cfg.maxPending / 2;
  }

  write(line: string): void {
    if (this.#closed || !this.#target.usable) {
      this.stats.dropped++;
      return;
    }
    const units = line.length + 1;
    if (this.#pendingUnits + units > this.#cfg.maxPending) {
      this.stats.dropped++;
      return;
    }
    this.#pending.push(line);
    this.#pendingUnits += units;
    // a running pump takes these lines too (it loops until nothing is left)
    if (this.#pump === null) this.#schedule();
  }

  #startPump(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#pump = this.#run().finally(() => {
      this.#pump = null;
      // lines that came in during the last write wait for the timer
      if (this.#pending.length > 0 && !this.#closed) this.#schedule();
    });
  }

  /** A full chunk goes now; less waits for the flush timer. */
  #schedule(): void {
    if (this.#pendingUnits >= this.#cfg.chunkBytes) {
      this.#startPump();
    } else if (this.#timer === undefined) {
      const id = setTimeout(() => {
        this.#timer = undefined;
        if (this.#pump === null) this.#startPump();
      }, this.#cfg.flushMs);
      Deno.unrefTimer(id);
      this.#timer = id;
    }
  }

  /** Write chunks until nothing is pending. */
  async #run(): Promise<void> {
    while (this.#pending.length > 0) {
      // take whole lines up to one chunk
      let lines: string[];
      if (this.#pendingUnits <= this.#cfg.chunkBytes) {
        lines = this.#pending;
        this.#pending = [];
        this.#pendingUnits = 0;
      } else {
        let n = 0;
        let units = 0;
        while (n < this.#pending.length && (n === 0 || units < this.#cfg.chunkBytes)) {
          units += this.#pending[n].length + 1;
          n++;
        }
        lines = this.#pending.splice(0, n);
        this.#pendingUnits -= units;
      }
      if (!this.#target.usable) {
        this.stats.dropped += lines.length;
        continue;
      }
      const bytes = enc.encode(lines.join("\n") + "\n");
      const rotationsBefore = this.#target.rotations;
      const rotErrBefore = this.#target.rotationErrors;
      try {
        await this.#target.write(bytes);
        this.stats.written += lines.length;
        this.stats.bytes += bytes.length;
      } catch (e) {
        this.stats.errors++;
        this.stats.dropped += lines.length;
        try {
          this.#onError?.(e);
        } catch { /* a reporting hook must not break the sink */ }
      }
      this.stats.rotations += this.#target.rotations - rotationsBefore;
      this.stats.errors += this.#target.rotationErrors - rotErrBefore;
    }
  }

  async flush(): Promise<void> {
    while (this.#pump !== null || this.#pending.length > 0) {
      if (this.#pump === null) this.#startPump();
      await this.#pump;
    }
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = (async () => {
      await this.flush();
      this.#closed = true;
      this.#target.close();
    })();
    return this.#closing;
  }
}
