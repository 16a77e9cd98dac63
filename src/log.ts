/**
 * The logger facade (logtape) and the plain output helpers. Nothing else in
 * the program writes to the terminal: no console.* elsewhere.
 *
 * - Logs go to stderr: JSON lines for the daemon (`run`), text for the CLI.
 * - Command results go to stdout through {@link out}; events are stdout data
 *   too, written by the event sinks through {@link writeStdout}.
 *
 * Log records never carry secrets: callers pass key fingerprints, never keys.
 *
 * @module
 */
import {
  configure,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
} from "@logtape/logtape";

const enc = new TextEncoder();

export type LogFormat = "json" | "text";

let configured = false;

/** Configure logging once per process (idempotent). */
export async function setupLogging(format: LogFormat, level: LogLevel = "info"): Promise<void> {
  if (configured) await reset();
  const formatter = format === "json"
    ? getJsonLinesFormatter()
    : getTextFormatter({ timestamp: "date-time-timezone", category: "." });
  await configure({
    sinks: {
      stderr: (record: LogRecord) => writeStderr(formatter(record)),
    },
    loggers: [
      { category: ["aegisbpf"], lowestLevel: level, sinks: ["stderr"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
    ],
  });
  configured = true;
}

/** A logger for one part of the agent, e.g. log("bpf"). */
export function log(...category: string[]): Logger {
  return getLogger(["aegisbpf", ...category]);
}

/**
 * A literal log message: text with braces doubled, so values interpolated
 * into the message are never read as placeholders (pass them as
 * properties too, for machines).
 */
export function literal(text: string): string {
  return text.replace(/[{}]/g, (c) => c + c);
}

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
