import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { LogRecord } from "@logtape/logtape";
import { jsonLogLine, rfc3339Nanos } from "./log.ts";

Deno.test("log timestamps: RFC 3339 UTC with nine fraction digits, like the events'", () => {
  strictEqual(
    rfc3339Nanos(Date.UTC(2026, 10, 30, 23, 50, 1, 123)),
    "2026-11-30T23:50:01.123000000Z",
  );
  strictEqual(rfc3339Nanos(0), "1970-01-01T00:00:00.000000000Z");
});

Deno.test("a JSON log line: the common fields first, values in the message, properties nested", () => {
  const record = {
    category: ["aegisbpf", "daemon"],
    level: "warning",
    message: ["rule ", 7n, " on ", "/etc/x", " failed: ", { code: "E" }, ""],
    rawMessage: "rule {id} on {path} failed: {err}",
    timestamp: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
    properties: { id: 7n, err: new Error("boom") },
  } as unknown as LogRecord;
  const line = jsonLogLine(record);
  strictEqual(line.endsWith("\n") && !line.slice(0, -1).includes("\n"), true);
  const v = JSON.parse(line);
  deepStrictEqual(Object.keys(v), [
    "timestamp",
    "type",
    "level",
    "logger",
    "message",
    "properties",
  ]);
  deepStrictEqual(v, {
    timestamp: "2026-01-02T03:04:05.006000000Z",
    type: "log",
    level: "warning",
    logger: "aegisbpf.daemon",
    message: 'rule 7 on /etc/x failed: {"code":"E"}',
    properties: { id: "7", err: { name: "Error", message: "boom" } },
  });
});
