import { deepStrictEqual as eq, ok, strictEqual } from "node:assert/strict";
import { REASON_CODES } from "../contracts.ts";
import {
  PostureStateMachine,
  type RuntimeCheckInput,
  runtimeChecks,
  stateChangeEvent,
  type StateTransition,
} from "./state.ts";

Deno.test("transitions: ids from 1, from/to, degradations counted only under an enforce request", () => {
  const seen: StateTransition[] = [];
  const m = new PostureStateMachine({
    enforceRequested: true,
    strictMode: false,
    onTransition: (t) => seen.push(t),
    now: () => 1700000000,
  });
  strictEqual(m.state, null);
  const a = m.transition("ENFORCE", "STARTUP_ENFORCE_READY", "all hooks attached");
  eq(a, {
    transition_id: 1,
    from: null,
    to: "ENFORCE",
    reason_code: "STARTUP_ENFORCE_READY",
    detail: "all hooks attached",
    degradation_count: 0,
    strict_mode: false,
    enforce_requested: true,
    at_unix: 1700000000,
  });
  const b = m.transition("DEGRADED", "PRIORITY_RINGBUF_DROPS", "3 dropped");
  strictEqual(b.transition_id, 2);
  strictEqual(b.from, "ENFORCE");
  strictEqual(b.degradation_count, 1);
  m.transition("ENFORCE", "RECOVERED", "ok");
  m.transition("AUDIT_FALLBACK", "POLICY_APPLY_FAILED", "x");
  strictEqual(m.total, 4);
  strictEqual(m.degradationCount, 2);
  eq(seen.map((t) => t.transition_id), [1, 2, 3, 4]);
  eq(m.summary(), { total: 4, degradation_total: 2, strict_mode: false, enforce_requested: true });

  const audit = new PostureStateMachine({ enforceRequested: false, strictMode: true });
  audit.transition("AUDIT_FALLBACK", "STARTUP_AUDIT_MODE", "--audit");
  strictEqual(audit.degradationCount, 0, "audit by request is not a degradation");
  strictEqual(audit.shouldExit(), false);
});

Deno.test("shouldExit: strict, enforce requested, and AUDIT_FALLBACK or DEGRADED", () => {
  const m = new PostureStateMachine({ enforceRequested: true, strictMode: true });
  strictEqual(m.shouldExit(), false);
  m.transition("ENFORCE", "STARTUP_ENFORCE_READY", "");
  strictEqual(m.shouldExit(), false);
  m.transition("ENFORCE_SIGNAL", "ENFORCE_SIGNAL_FALLBACK", "");
  strictEqual(m.shouldExit(), false);
  m.transition("DEGRADED", "MAP_CAPACITY_EXCEEDED", "");
  strictEqual(m.shouldExit(), true);
  m.transition("AUDIT_FALLBACK", "BREAK_GLASS_ACTIVE", "");
  strictEqual(m.shouldExit(), true);
  const lax = new PostureStateMachine({ enforceRequested: true, strictMode: false });
  lax.transition("DEGRADED", "BPF_LOAD_FAILED", "");
  strictEqual(lax.shouldExit(), false);
});

Deno.test("history is bounded; counts are not", () => {
  const m = new PostureStateMachine({ enforceRequested: true, strictMode: false, historyLimit: 3 });
  for (let i = 0; i < 10; i++) {
    m.transition(
      i % 2 ? "DEGRADED" : "ENFORCE",
      i % 2 ? "MAP_CAPACITY_EXCEEDED" : "RECOVERED",
      `${i}`,
    );
  }
  eq(m.history.map((t) => t.transition_id), [8, 9, 10]);
  strictEqual(m.total, 10);
  strictEqual(m.degradationCount, 5);
});

Deno.test("stateChangeEvent: type state_change with every transition field", () => {
  const m = new PostureStateMachine({ enforceRequested: true, strictMode: true, now: () => 5 });
  const t = m.transition("AUDIT_FALLBACK", "CAPABILITY_AUDIT_ONLY", "BPF_LSM_DISABLED");
  const e = stateChangeEvent(t);
  strictEqual(e.type, "state_change");
  for (const [k, v] of Object.entries(t)) eq(e[k], v, k);
  strictEqual(e.state, "AUDIT_FALLBACK");
  ok(JSON.parse(JSON.stringify(e)).transition_id === 1);
});

const base: RuntimeCheckInput = {
  current: "ENFORCE",
  healthyState: "ENFORCE",
  expectedHooks: ["lsm/file_open", "lsm/bprm_check_security"],
  attachedHooks: ["lsm/bprm_check_security", "lsm/file_open"],
  priorityDropDelta: 0,
  mapUtilisation: { aegis_deny_inode: 0.5 },
};

Deno.test("runtimeChecks: every reason it can produce, in priority order", () => {
  strictEqual(runtimeChecks(base), null);
  const lost = runtimeChecks({ ...base, attachedHooks: ["lsm/file_open"], priorityDropDelta: 9 });
  eq(lost, {
    state: "DEGRADED",
    reason: "ATTACH_CONTRACT_MISMATCH",
    detail: "no longer attached: lsm/bprm_check_security",
  });
  eq(
    runtimeChecks({ ...base, priorityDropDelta: 3, mapUtilisation: { m: 1 } })?.reason,
    "PRIORITY_RINGBUF_DROPS",
  );
  const full = runtimeChecks({ ...base, mapUtilisation: { b: 0.95, a: 0.9, c: 0.2 } });
  eq(full, {
    state: "DEGRADED",
    reason: "MAP_CAPACITY_EXCEEDED",
    detail: "maps at or above 90% of capacity: a 90%, b 95%",
  });
  strictEqual(
    runtimeChecks({ ...base, mapUtilisation: { a: 0.6 }, mapThreshold: 0.5 })?.reason,
    "MAP_CAPACITY_EXCEEDED",
  );
  const proof = runtimeChecks({
    ...base,
    proofProblem: "enforcement proof failed: file: opened",
    priorityDropDelta: 2,
  });
  eq(proof, {
    state: "DEGRADED",
    reason: "ENFORCEMENT_PROOF_FAILED",
    detail: "enforcement proof failed: file: opened",
  });
  strictEqual(runtimeChecks({ ...base, proofProblem: null }), null, "a passing proof");
  strictEqual(
    runtimeChecks({ ...base, current: "DEGRADED", proofProblem: "still failing" }),
    null,
    "stays DEGRADED while the proof fails",
  );
  const rate = runtimeChecks({ ...base, denyRate: { perSecond: 120, threshold: 100 } });
  eq(rate?.reason, "DENY_RATE_THRESHOLD_EXCEEDED");
  strictEqual(runtimeChecks({ ...base, denyRate: { perSecond: 100, threshold: 100 } }), null);
  const back = runtimeChecks({ ...base, current: "DEGRADED" });
  eq(back?.state, "ENFORCE");
  eq(back?.reason, "RECOVERED");
  eq(
    runtimeChecks({ ...base, current: "DEGRADED", healthyState: "ENFORCE_SIGNAL" })?.state,
    "ENFORCE_SIGNAL",
  );
  const produced = new Set([
    "ATTACH_CONTRACT_MISMATCH",
    "PRIORITY_RINGBUF_DROPS",
    "MAP_CAPACITY_EXCEEDED",
    "DENY_RATE_THRESHOLD_EXCEEDED",
    "ENFORCEMENT_PROOF_FAILED",
    "RECOVERED",
  ]);
  for (const r of produced) ok((REASON_CODES as readonly string[]).includes(r), r);
});

Deno.test("runtimeChecks: no repeat while degraded, nothing from AUDIT_FALLBACK, ENFORCE_SIGNAL degrades", () => {
  strictEqual(runtimeChecks({ ...base, current: "DEGRADED", priorityDropDelta: 1 }), null);
  strictEqual(runtimeChecks({ ...base, current: "AUDIT_FALLBACK", priorityDropDelta: 1 }), null);
  strictEqual(runtimeChecks({ ...base, current: "AUDIT_FALLBACK" }), null);
  eq(
    runtimeChecks({
      ...base,
      current: "ENFORCE_SIGNAL",
      healthyState: "ENFORCE_SIGNAL",
      priorityDropDelta: 1,
    })?.state,
    "DEGRADED",
  );
});
