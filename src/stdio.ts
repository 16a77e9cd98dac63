/**
 * Synchronous whole-string writes to stdout and stderr, with no imports: the
 * CLI's fast path (src/cli/fast.ts) prints the top-level help and the
 * version through them before anything else is loaded; src/log.ts re-exports
 * them for everything else.
 *
 * @module
 */
const enc = new TextEncoder();

let stdoutClosed = false;

/** Has stdout's reader gone away (EPIPE)? Later writes are dropped. */
export function isStdoutClosed(): boolean {
  return stdoutClosed;
}

/**
 * Write text to stdout synchronously (whole string). When the reader has
 * gone (`aegisbpf … | head`), the rest is dropped instead of crashing:
 * a daemon keeps enforcing without its event consumer.
 */
export function writeStdout(text: string): void {
  if (stdoutClosed) return;
  try {
    writeAll(Deno.stdout, enc.encode(text));
  } catch (e) {
    if (!(e instanceof Deno.errors.BrokenPipe)) throw e;
    stdoutClosed = true;
  }
}

/** Write text to stderr synchronously (whole string). */
export function writeStderr(text: string): void {
  writeAll(Deno.stderr, enc.encode(text));
}

function writeAll(w: { writeSync(p: Uint8Array): number }, bytes: Uint8Array): void {
  let off = 0;
  while (off < bytes.length) off += w.writeSync(bytes.subarray(off));
}

/** Command output: one line to stdout. */
export function out(line = ""): void {
  writeStdout(line + "\n");
}

/** Command output as pretty JSON on stdout. */
export function outJson(value: unknown): void {
  writeStdout(JSON.stringify(value, (_k, v) => typeof v === "bigint" ? v.toString() : v, 2) + "\n");
}
