import assert from "node:assert/strict";
import type { Blocker } from "../contracts.ts";
import {
  afterPolicyProblem,
  decideGate,
  type GateDecision,
  policyBlocker,
  refusalMessage,
} from "./gate.ts";

const lsmOff: Blocker = {
  code: "BPF_LSM_DISABLED",
  message: "bpf is not in the active LSM list",
  remedy: "boot with lsm=...,bpf",
};
const netOff: Blocker = {
  code: "NETWORK_HOOK_UNAVAILABLE",
  message: "no socket_connect hook",
  remedy: "use a kernel with the socket hooks",
};
const auditOnly: Blocker = {
  code: "CAPABILITY_AUDIT_ONLY",
  message: "tracepoints only",
  remedy: "fix BPF_LSM_DISABLED",
};
const base = {
  audit: false,
  breakGlass: false,
  gateMode: "fail-closed" as const,
  signalFallback: false,
  lsmUsable: true,
  tracepoints: true,
  blockers: [] as Blocker[],
};

Deno.test("gate: BPF LSM usable and no blockers → ENFORCE", () => {
  const d = decideGate(base);
  assert.equal(d.state, "ENFORCE");
  assert.equal(d.reason, "STARTUP_ENFORCE_READY");
  assert.equal(d.engine, "lsm");
  assert.equal(d.enforcing, true);
});

Deno.test("gate: fail-closed with a blocker refuses (state null) and names it", () => {
  const d = decideGate({ ...base, lsmUsable: false, blockers: [lsmOff] });
  assert.equal(d.state, null);
  assert.equal(d.reason, "CAPABILITY_AUDIT_ONLY");
  assert.match(d.detail, /BPF_LSM_DISABLED/);
  const msg = refusalMessage([lsmOff, netOff]);
  assert.match(msg, /BPF_LSM_DISABLED: .*\n\s+remedy: boot with lsm=/);
  assert.match(msg, /NETWORK_HOOK_UNAVAILABLE/);
});

Deno.test("gate: audit-fallback continues in AUDIT_FALLBACK with the reason", () => {
  const d = decideGate({
    ...base,
    gateMode: "audit-fallback",
    lsmUsable: false,
    blockers: [lsmOff],
  });
  assert.equal(d.state, "AUDIT_FALLBACK");
  assert.equal(d.reason, "CAPABILITY_AUDIT_ONLY");
  assert.equal(d.engine, "fallback");
  assert.equal(d.enforcing, false);
});

Deno.test("gate: a policy-derived blocker gives its own reason code, even with BPF LSM", () => {
  const d = decideGate({ ...base, gateMode: "audit-fallback", blockers: [netOff] });
  assert.equal(d.state, "AUDIT_FALLBACK");
  assert.equal(d.reason, "NETWORK_HOOK_UNAVAILABLE");
  assert.equal(d.engine, "lsm");
  assert.equal(decideGate({ ...base, blockers: [netOff] }).state, null);
});

Deno.test("gate: signal fallback only without BPF LSM, with tracepoints, LSM the only blocker", () => {
  const d = decideGate({
    ...base,
    signalFallback: true,
    lsmUsable: false,
    blockers: [lsmOff, auditOnly],
  });
  assert.equal(d.state, "ENFORCE_SIGNAL");
  assert.equal(d.reason, "ENFORCE_SIGNAL_FALLBACK");
  assert.equal(d.engine, "fallback");
  assert.equal(d.enforcing, true);
  // no tracepoints: refuse
  assert.equal(
    decideGate({
      ...base,
      signalFallback: true,
      lsmUsable: false,
      tracepoints: false,
      blockers: [lsmOff],
    })
      .state,
    null,
  );
  // another blocker besides the LSM one: signals cannot stand in for it
  assert.equal(
    decideGate({ ...base, signalFallback: true, lsmUsable: false, blockers: [lsmOff, netOff] })
      .state,
    null,
  );
});

Deno.test("gate: --audit and break-glass never enforce", () => {
  const a = decideGate({ ...base, audit: true });
  assert.deepEqual([a.state, a.reason, a.enforcing], [
    "AUDIT_FALLBACK",
    "STARTUP_AUDIT_MODE",
    false,
  ]);
  const b = decideGate({ ...base, breakGlass: true, blockers: [lsmOff], lsmUsable: false });
  assert.deepEqual([b.state, b.reason, b.enforcing], [
    "AUDIT_FALLBACK",
    "BREAK_GLASS_ACTIVE",
    false,
  ]);
});

Deno.test("gate: a policy the start cannot have — fail-closed refuses, audit-fallback reports only", () => {
  const enforce: GateDecision = {
    state: "ENFORCE",
    reason: "STARTUP_ENFORCE_READY",
    engine: "lsm",
    enforcing: true,
    detail: "",
  };
  assert.deepEqual(afterPolicyProblem(enforce, "fail-closed", "bad"), { refuse: true });
  const fb = afterPolicyProblem(enforce, "audit-fallback", "stored policy damaged");
  assert.equal(fb.refuse, false);
  if (!fb.refuse) {
    assert.equal(fb.decision.state, "AUDIT_FALLBACK");
    assert.equal(fb.decision.reason, "POLICY_APPLY_FAILED");
    assert.equal(fb.decision.enforcing, false);
    assert.equal(fb.decision.detail, "stored policy damaged");
  }
  // a start that does not enforce anyway (--audit) goes on as decided, in either mode
  const audit: GateDecision = { ...enforce, state: "AUDIT_FALLBACK", enforcing: false };
  assert.deepEqual(afterPolicyProblem(audit, "fail-closed", "x"), {
    refuse: false,
    decision: audit,
  });
  const b = policyBlocker("RUN_POLICY_FAILED", "--policy /x could not be applied");
  assert.equal(b.code, "RUN_POLICY_FAILED");
  assert.match(b.remedy, /policy lint/);
  assert.match(policyBlocker("POLICY_RESTORE_FAILED", "d").remedy, /restart the agent/);
});
