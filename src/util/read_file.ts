/**
 * Bounded reads of files a user names (CLI arguments, key files, bundles):
 * regular files only, never more than a cap, and errors that name the file,
 * what it was meant to be and the limit.
 *
 * - Anything but a regular file is refused from its `stat`, before it is
 *   opened: `/dev/zero`, a FIFO (opening one for reading would block until a
 *   writer appears), a socket, a directory. Symbolic links are followed.
 * - After opening, the handle's `fstat` must still be a regular file with the
 *   same device and inode; otherwise the path was swapped between the two
 *   calls and the read is refused.
 * - The read stops after `maxBytes + 1` bytes whatever `stat` said, so a
 *   file that grows while it is read, or one whose size `stat` does not know
 *   (`/proc`), still costs at most the cap.
 *
 * Residual race (documented in docs/signing.md): Deno cannot open with
 * `O_NONBLOCK`, so someone able to replace the path by a FIFO between the
 * `stat` and the `open` can make the open wait for a writer. That needs
 * write access to the file's folder, and it delays the command; it does not
 * get anything read or accepted.
 *
 * @module
 */
import { AegisError } from "../errors.ts";

/** Why a capped read was refused. */
export type ReadFileProblem = "unreadable" | "not_regular" | "too_large";

/** A refused capped read; `message` names the file, its role and the limit. */
export class FileReadError extends AegisError {
  readonly path: string;
  readonly problem: ReadFileProblem;
  readonly limit: number;
  constructor(
    code: string,
    message: string,
    path: string,
    problem: ReadFileProblem,
    limit: number,
    options?: ErrorOptions,
  ) {
    super(code, message, options);
    this.path = path;
    this.problem = problem;
    this.limit = limit;
  }
}

/** Options of {@link readFileCapped}. */
export interface ReadCappedOptions {
  /** Largest accepted size in bytes (a non-negative safe integer). */
  maxBytes: number;
  /** What the file is meant to be, for messages ("policy file", "SHA-256 file"). */
  what?: string;
  /** Error code of every refusal (default `USAGE`). */
  code?: string;
  /** Error code when the file is over the cap (default: `code`). */
  tooLargeCode?: string;
}

/** "16777216 bytes (16 MiB)", "4096 bytes (4 KiB)", "100 bytes". */
export function formatLimit(n: number): string {
  for (const [unit, size] of [["GiB", 1 << 30], ["MiB", 1 << 20], ["KiB", 1 << 10]] as const) {
    if (n >= size && n % size === 0) return `${n} bytes (${n / size} ${unit})`;
  }
  return `${n} bytes`;
}

function kindOf(st: Deno.FileInfo): string {
  if (st.isDirectory) return "a directory";
  if (st.isCharDevice) return "a character device";
  if (st.isBlockDevice) return "a block device";
  if (st.isFifo) return "a FIFO (named pipe)";
  if (st.isSocket) return "a socket";
  return "not a regular file";
}

/**
 * Read a whole regular file of at most `opts.maxBytes` bytes. Throws
 * {@link FileReadError} (code `opts.code`, default `USAGE`) when the file
 * cannot be read, is not a regular file, or is larger than the cap; never
 * blocks on a FIFO or device named directly and never reads past the cap.
 */
export function readFileCapped(path: string, opts: ReadCappedOptions): Uint8Array<ArrayBuffer> {
  const max = opts.maxBytes;
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new RangeError(`readFileCapped: maxBytes must be a non-negative integer, got ${max}`);
  }
  const what = opts.what ?? "file";
  const code = opts.code ?? "USAGE";
  const fail = (problem: ReadFileProblem, message: string, cause?: unknown): FileReadError =>
    new FileReadError(
      problem === "too_large" ? opts.tooLargeCode ?? code : code,
      message,
      path,
      problem,
      max,
      cause === undefined ? undefined : { cause },
    );
  const limit = formatLimit(max);
  const tooLarge = (size: string) =>
    fail("too_large", `${what} "${path}" is ${size}; the limit is ${limit}`);

  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(path);
  } catch (e) {
    throw fail("unreadable", `Cannot read ${what} "${path}": ${(e as Error).message}`, e);
  }
  if (!st.isFile) {
    throw fail(
      "not_regular",
      `${what} "${path}" is ${kindOf(st)}; expected a regular file of at most ${limit}`,
    );
  }
  if (st.size > max) throw tooLarge(`${st.size} bytes`);

  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch (e) {
    throw fail("unreadable", `Cannot read ${what} "${path}": ${(e as Error).message}`, e);
  }
  try {
    const fst = f.statSync();
    if (!fst.isFile || fst.ino !== st.ino || fst.dev !== st.dev) {
      throw fail(
        "not_regular",
        `${what} "${path}" was replaced while it was opened (now ${
          fst.isFile ? "another file" : kindOf(fst)
        }); refusing to read it`,
      );
    }
    let got: Uint8Array<ArrayBuffer> | null;
    try {
      got = readAllCapped(f, fst.size, max);
    } catch (e) {
      throw fail("unreadable", `Cannot read ${what} "${path}": ${(e as Error).message}`, e);
    }
    if (got === null) {
      throw tooLarge(`over ${max} bytes (it grew while being read, or stat did not know its size)`);
    }
    return got;
  } finally {
    f.close();
  }
}

/**
 * Read `reader` to its end, but never more than `max + 1` bytes: the bytes,
 * or null when there are more than `max`. `sizeHint` (the stat size, 0 when
 * unknown) only sizes the first buffer. Exported for tests.
 */
export function readAllCapped(
  reader: { readSync(p: Uint8Array): number | null },
  sizeHint: number,
  max: number,
): Uint8Array<ArrayBuffer> | null {
  // One byte past the cap tells "exactly max" from "more than max".
  let buf = new Uint8Array(Math.min(max + 1, Math.max(sizeHint + 1, 4096)));
  let total = 0;
  for (;;) {
    if (total === buf.length) {
      if (buf.length > max) return null;
      const bigger = new Uint8Array(Math.min(max + 1, buf.length * 2));
      bigger.set(buf);
      buf = bigger;
    }
    const n = reader.readSync(buf.subarray(total));
    if (n === null) return buf.slice(0, total);
    total += n;
  }
}

/** {@link readFileCapped}, decoded as UTF-8 (invalid sequences become U+FFFD). */
export function readTextFileCapped(path: string, opts: ReadCappedOptions): string {
  return new TextDecoder().decode(readFileCapped(path, opts));
}
