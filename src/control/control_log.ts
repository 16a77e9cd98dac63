/**
 * control_log.jsonl: the append-only audit trail of emergency toggles. One
 * JSON object per line, each line written with a single write and fsynced
 * before the toggle is reported done. When the file would grow past
 * `maxBytes` it is rotated first: `.N` is dropped, `.i` becomes `.i+1`, the
 * live file becomes `.1` — at most `keep` old files are kept.
 *
 * @module
 */
import { AegisError } from "../errors.ts";
import { syncDir } from "../policy/atomic.ts";
import { checkPrivateFile } from "./perms.ts";

/** Default size at which the log is rotated (1 MiB). */
export const DEFAULT_LOG_MAX_BYTES = 1 << 20;
/** Default number of rotated files kept. */
export const DEFAULT_LOG_KEEP = 5;

/** Options of {@link ControlLog}. */
export interface ControlLogOptions {
  maxBytes?: number;
  keep?: number;
  /** the owner files must have (default: this process's uid) */
  ownerUid?: number;
}

/** The append-only, size-rotated JSONL audit log. */
export class ControlLog {
  readonly path: string;
  readonly maxBytes: number;
  readonly keep: number;
  readonly #ownerUid: number | undefined;

  constructor(path: string, opts: ControlLogOptions = {}) {
    this.path = path;
    this.maxBytes = opts.maxBytes ?? DEFAULT_LOG_MAX_BYTES;
    this.keep = Math.max(1, opts.keep ?? DEFAULT_LOG_KEEP);
    this.#ownerUid = opts.ownerUid;
  }

  #dir(): string {
    const i = this.path.lastIndexOf("/");
    return i <= 0 ? (i === 0 ? "/" : ".") : this.path.slice(0, i);
  }

  /**
   * Check that the log can be appended to, without writing: the file is
   * safe (or absent) and opens for append. Called before the kernel flag
   * changes, so an unwritable log refuses the toggle with nothing changed.
   */
  preflight(): void {
    checkPrivateFile(this.path, "control log", this.#ownerUid);
    let f: Deno.FsFile | undefined;
    try {
      f = Deno.openSync(this.path, { append: true, create: true, mode: 0o600 });
    } catch (e) {
      throw this.#failure("open", e);
    } finally {
      f?.close();
    }
  }

  /** Append one record (one line), rotating first when needed; fsynced. */
  append(record: Record<string, unknown>): void {
    const bytes = new TextEncoder().encode(JSON.stringify(record) + "\n");
    let size = 0;
    try {
      size = Deno.statSync(this.path).size;
    } catch { /* absent: 0 */ }
    if (size > 0 && size + bytes.length > this.maxBytes) this.#rotate();
    checkPrivateFile(this.path, "control log", this.#ownerUid);
    let f: Deno.FsFile | undefined;
    try {
      f = Deno.openSync(this.path, { append: true, create: true, mode: 0o600 });
      Deno.chmodSync(this.path, 0o600);
      // one write call for the whole line (O_APPEND: never interleaved)
      const n = f.writeSync(bytes);
      if (n !== bytes.length) {
        throw new Error(`short write (${n} of ${bytes.length} bytes)`);
      }
      f.syncSync();
    } catch (e) {
      throw this.#failure("append to", e);
    } finally {
      try {
        f?.close();
      } catch { /* closed */ }
    }
  }

  #rotate(): void {
    try {
      try {
        Deno.removeSync(`${this.path}.${this.keep}`);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      for (let i = this.keep - 1; i >= 1; i--) {
        try {
          Deno.renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        }
      }
      Deno.renameSync(this.path, `${this.path}.1`);
      syncDir(this.#dir());
    } catch (e) {
      throw this.#failure("rotate", e);
    }
  }

  #failure(what: string, e: unknown): AegisError {
    if (e instanceof AegisError) return e;
    return new AegisError(
      "CONTROL_LOG_FAILED",
      `Cannot ${what} the control log "${this.path}": ${(e as Error).message}. The audit trail ` +
        `must be written for a toggle to happen; free space or fix the state directory ` +
        `(read-only file system? permissions?).`,
      { cause: e },
    );
  }

  /** Every record of the live file and the rotated ones, oldest first (for tests and tools). */
  readAll(): Record<string, unknown>[] {
    const files = [];
    for (let i = this.keep; i >= 1; i--) files.push(`${this.path}.${i}`);
    files.push(this.path);
    const out: Record<string, unknown>[] = [];
    for (const p of files) {
      let text: string;
      try {
        text = Deno.readTextFileSync(p);
      } catch {
        continue;
      }
      for (const line of text.split("\n")) if (line !== "") out.push(JSON.parse(line));
    }
    return out;
  }
}
