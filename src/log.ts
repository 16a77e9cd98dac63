/**
 * The logger facade (logtape) and the plain output helpers. Nothing else in
 * the program writes to the terminal: no console.* elsewhere.
 *
 * - Logs go to stderr: JSON lines (the shape of {@link jsonLogLine}, shared
 *   with the events' common fields: docs/telemetry.md, "Log lines") or
 *   human text lines; `--log-format`/AEGIS_LOG_FORMAT chooses, the default
 *   is text on a terminal and JSON otherwise. `--log-level` sets the lowest
 *   level written.
 * - Command results go to stdout through {@link out}; events are stdout data
 *   too, written by the event sinks through {@link writeStdout}.
 *
 * Log records never carry secrets: callers pass key fingerprints, never keys.
 *
 * @module
 */
import {
  configure,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
} from "@logtape/logtape";
import { writeStderr } from "./stdio.ts";

export { isStdoutClosed, out, outJson, writeStderr, writeStdout } from "./stdio.ts";

/** The log formats `--log-format` accepts. */
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = typeof LOG_FORMATS[number];

/** The levels `--log-level` accepts, lowest first. */
export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error"] as const;
export type CliLogLevel = typeof LOG_LEVELS[number];

/**
 * RFC 3339 UTC time with nine fraction digits, the format of the events'
 * wall-clock `timestamp` (a log record's clock has millisecond precision:
 * the last six digits are zero).
 */
export function rfc3339Nanos(epochMs: number): string {
  const iso = new Date(epochMs).toISOString(); // 2026-11-30T23:50:00.123Z
  return `${iso.slice(0, -1)}000000Z`;
}

/**
 * One JSON log line (docs/telemetry.md, "Log lines"): `timestamp`, `type`
 * ("log"), `level`, `logger`, `message`, then `properties` (the record's
 * structured values, never secrets). The first fields have the names and
 * formats of the events' common fields, so one pipeline reads both streams.
 */
export function jsonLogLine(record: LogRecord): string {
  let message = "";
  for (let i = 0; i < record.message.length; i++) {
    const part = record.message[i];
    const plain = i % 2 === 0 || typeof part === "string" || typeof part === "bigint";
    message += plain ? String(part) : stringify(part);
  }
  return stringify({
    timestamp: rfc3339Nanos(record.timestamp),
    type: "log",
    level: record.level,
    logger: record.category.join("."),
    message,
    properties: record.properties,
  }) + "\n";
}

function stringify(v: unknown): string {
  return JSON.stringify(v, (_k, x) => {
    if (typeof x === "bigint") return x.toString();
    if (x instanceof Error) return { name: x.name, message: x.message };
    return x;
  }) ?? "null";
}

let configured = false;

/** Configure logging once per process (idempotent). */
export async function setupLogging(format: LogFormat, level: LogLevel = "info"): Promise<void> {
  if (configured) await reset();
  const formatter = format === "json"
    ? jsonLogLine
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
