import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { serviceNotifier, statusLine } from "./notify.ts";

function recorder() {
  const sent: [string, string][] = [];
  const errors: unknown[] = [];
  return { sent, errors, send: (s: string, m: string) => void sent.push([s, m]) };
}

Deno.test("notify: nothing without NOTIFY_SOCKET (not under a notify service manager)", () => {
  const r = recorder();
  strictEqual(serviceNotifier({}, 7, r.send, (e) => r.errors.push(e)), null);
  strictEqual(serviceNotifier({ NOTIFY_SOCKET: "" }, 7, r.send, (e) => r.errors.push(e)), null);
});

Deno.test("notify: READY with status and main pid, STATUS, STOPPING; no watchdog unless asked", () => {
  const r = recorder();
  const n = serviceNotifier({ NOTIFY_SOCKET: "@sd" }, 42, r.send, (e) => r.errors.push(e))!;
  strictEqual(n.watchdogMs, null);
  n.ready("ENFORCE: 9 hooks");
  n.status("DEGRADED (PROOF)\nsecond line");
  n.watchdog();
  n.stopping("stopping");
  deepStrictEqual(r.sent, [
    ["@sd", "READY=1\nSTATUS=ENFORCE: 9 hooks\nMAINPID=42"],
    ["@sd", "STATUS=DEGRADED (PROOF) second line"],
    ["@sd", "STOPPING=1\nSTATUS=stopping"],
  ]);
});

Deno.test("notify: the watchdog pings only for this pid, period from WATCHDOG_USEC", () => {
  const r = recorder();
  const env = { NOTIFY_SOCKET: "/run/x", WATCHDOG_USEC: "60000000" };
  const mine = serviceNotifier({ ...env, WATCHDOG_PID: "42" }, 42, r.send, () => {})!;
  strictEqual(mine.watchdogMs, 60_000);
  mine.watchdog();
  deepStrictEqual(r.sent, [["/run/x", "WATCHDOG=1"]]);
  const other = serviceNotifier({ ...env, WATCHDOG_PID: "41" }, 42, r.send, () => {})!;
  strictEqual(other.watchdogMs, null, "WATCHDOG_PID names another process");
  for (const bad of ["0", "-5", "abc", "1e400"]) {
    const n = serviceNotifier({ NOTIFY_SOCKET: "/x", WATCHDOG_USEC: bad }, 1, r.send, () => {})!;
    strictEqual(n.watchdogMs, null, `WATCHDOG_USEC=${bad}`);
  }
});

Deno.test("notify: a failing send is reported once, then the notifier goes quiet", () => {
  const errors: unknown[] = [];
  let calls = 0;
  const n = serviceNotifier({ NOTIFY_SOCKET: "/gone" }, 1, () => {
    calls++;
    throw new Error("ENOENT");
  }, (e) => errors.push(e))!;
  n.ready("x");
  n.status("y");
  n.stopping("z");
  strictEqual(calls, 1);
  strictEqual(errors.length, 1);
});

Deno.test("notify: a status is one bounded line", () => {
  strictEqual(statusLine(" a\r\nb\n"), "a b");
  strictEqual(statusLine("x".repeat(500)).length, 200);
});
