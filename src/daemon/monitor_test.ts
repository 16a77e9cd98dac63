import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { RuntimeState } from "../contracts.ts";
import type { WantedTransition } from "../posture/state.ts";
import {
  MAP_CHECK_EVERY,
  type MonitorDeps,
  RuntimeMonitor,
  TAMPER_WINDOW_CHECKS,
  WINDOW_CHECKS,
} from "./monitor.ts";

/** The newest transition (a function: an assertion on the array must not narrow it). */
function last(t: WantedTransition[]): WantedTransition | undefined {
  return t.at(-1);
}

/** A monitor over counters the test moves, recording what it does. */
function fixture(over: Partial<MonitorDeps> = {}, tamperBefore = 0n) {
  const s = {
    drops: 0n,
    denies: 0n,
    tamper: tamperBefore,
    state: "ENFORCE" as RuntimeState,
    attached: ["lsm/file_open"],
    mapReads: 0,
    transitions: [] as WantedTransition[],
    alive: 0,
    strict: 0,
    errors: [] as string[],
    exit: false,
  };
  const deps: MonitorDeps = {
    drops: () => s.drops,
    blocks: () => ({ denies: s.denies, tamper: s.tamper }),
    expectedHooks: ["lsm/file_open"],
    attachedHooks: () => s.attached,
    mapUtilisation: () => (s.mapReads++, { aegis_deny_inode: 0.1 }),
    healthyState: "ENFORCE",
    state: () => s.state,
    emergencyActive: () => false,
    proofs: null,
    policyTick: () => {},
    ringBroken: () => false,
    transition: (w) => {
      s.transitions.push(w);
      s.state = w.state;
    },
    shouldExit: () => s.exit,
    onStrictExit: () => s.strict++,
    onAlive: () => s.alive++,
    onError: (what) => s.errors.push(what),
    ...over,
  };
  return { s, m: new RuntimeMonitor(deps) };
}

Deno.test("monitor: a lost hook degrades, its return recovers; every completed check is alive", () => {
  const { s, m } = fixture();
  m.check();
  deepStrictEqual(s.transitions, []);
  s.attached = [];
  m.check();
  strictEqual(last(s.transitions)?.state, "DEGRADED");
  s.attached = ["lsm/file_open"];
  m.check();
  strictEqual(last(s.transitions)?.state, "ENFORCE");
  strictEqual(last(s.transitions)?.reason, "RECOVERED");
  strictEqual(s.alive, 3);
});

Deno.test("monitor: drops count over the last WINDOW_CHECKS checks, then age out", () => {
  const { s, m } = fixture();
  s.drops = 5n; // 5 drops since the monitor was made
  m.check();
  strictEqual(last(s.transitions)?.state, "DEGRADED");
  for (let i = 0; i < WINDOW_CHECKS - 1; i++) m.check();
  strictEqual(s.state, "DEGRADED", "still inside the window");
  m.check();
  strictEqual(s.state, "ENFORCE", "the drops left the window");
});

Deno.test("monitor: the deny rate is denies over the window per second against the threshold", () => {
  const { s, m } = fixture({ denyRateThreshold: 2 });
  s.denies = 15n;
  m.check();
  strictEqual(s.state, "ENFORCE", "1.5/s is below 2/s");
  s.denies = 25n;
  m.check();
  strictEqual(s.state, "DEGRADED", "2.5/s");
});

Deno.test("monitor: map pressure is read on the first check and every MAP_CHECK_EVERY after", () => {
  const { s, m } = fixture();
  for (let i = 0; i < MAP_CHECK_EVERY + 1; i++) m.check();
  strictEqual(s.mapReads, 2);
});

Deno.test("monitor: a failing sweep is reported and the checks still run; a failing read is reported, not alive", () => {
  const a = fixture({
    policyTick: () => {
      throw new Error("x");
    },
  });
  a.s.attached = [];
  a.m.check();
  deepStrictEqual(a.s.errors, ["live rule sweep"]);
  strictEqual(a.s.state, "DEGRADED", "checks ran after the failed sweep");
  strictEqual(a.s.alive, 1);
  let broken = false;
  const b = fixture({
    drops: () => {
      if (broken) throw new Error("map read failed");
      return 0n;
    },
  });
  b.m.check();
  broken = true;
  b.m.check();
  deepStrictEqual(b.s.errors, ["runtime check"]);
  strictEqual(b.s.alive, 1, "no watchdog ping for a check that failed");
});

Deno.test("monitor: --strict-degrade stops the agent instead of pinging", () => {
  const { s, m } = fixture();
  s.exit = true;
  m.check();
  strictEqual(s.strict, 1);
  strictEqual(s.alive, 0);
});

Deno.test("monitor: proofs are scheduled every check and judged; emergency disable expedites", () => {
  const calls: string[] = [];
  let emergency = false;
  const { s, m } = fixture({
    emergencyActive: () => emergency,
    proofs: {
      tick: (on) => calls.push(on ? "expedite" : "tick"),
      problem: (on) => on ? null : "file surface: opened",
    },
  });
  m.check();
  strictEqual(s.state, "DEGRADED");
  ok(s.transitions[0].detail.includes("opened"), s.transitions[0].detail);
  emergency = true;
  m.check();
  deepStrictEqual(calls, ["tick", "expedite"]);
});

Deno.test("monitor: a broken ring leaves the posture to its own transition", () => {
  const { s, m } = fixture({ ringBroken: () => true });
  s.attached = [];
  m.check();
  deepStrictEqual(s.transitions, []);
  strictEqual(s.alive, 1);
});

Deno.test("monitor: tamper attempts at the threshold within 60 s degrade (TAMPER_ATTEMPTS); a quiet minute recovers", () => {
  // 5 attempts before the agent started are not counted
  const { s, m } = fixture({ tamperThreshold: 3 }, 5n);
  m.check();
  s.tamper += 2n; // two refusals: below the threshold
  m.check();
  deepStrictEqual(s.transitions, []);
  s.tamper += 1n; // the third within the window
  m.check();
  strictEqual(last(s.transitions)?.state, "DEGRADED");
  strictEqual(last(s.transitions)?.reason, "TAMPER_ATTEMPTS");
  ok(/3 tamper attempts .* last 60 s \(threshold 3\)/.test(last(s.transitions)!.detail));
  // stays degraded while the attempts are inside the window
  for (let i = 0; i < TAMPER_WINDOW_CHECKS - 2; i++) m.check();
  strictEqual(s.transitions.length, 1, "still within 60 s of the first attempts");
  // the first two leave the window: 1 left, below the threshold
  m.check();
  strictEqual(last(s.transitions)?.reason, "RECOVERED");
  strictEqual(s.state, "ENFORCE");
});

Deno.test("monitor: tamper attempts are not judged without a threshold (self-protection off, or 0)", () => {
  for (const tamperThreshold of [undefined, 0, 3]) {
    const { s, m } = fixture({ tamperThreshold });
    m.check();
    s.tamper += 100n;
    s.denies += 1n; // policy denies are not tamper attempts
    m.check();
    // the same attempts degrade with a threshold: the check above can fail
    deepStrictEqual(
      s.transitions.map((t) => t.reason),
      tamperThreshold ? ["TAMPER_ATTEMPTS"] : [],
      `threshold ${tamperThreshold}`,
    );
  }
});
