import { strictEqual } from "node:assert/strict";
import { selfProtectLoads } from "./engine_start.ts";
import type { StartDecision } from "./probe_gate.ts";
import { selfProtectRefusal, setNoNewPrivs } from "./self_protect.ts";

const ENFORCE = { state: "ENFORCE", engine: "lsm", enforcing: true } as StartDecision;

Deno.test("self-protect: the guards load only for enforcing LSM programs without break-glass", () => {
  const on = { selfProtect: true as const };
  const lsm = { mode: "lsm" as const, enforcing: true, breakGlass: false };
  strictEqual(selfProtectLoads(on, lsm), true);
  strictEqual(selfProtectLoads({}, lsm), false, "opt-in");
  strictEqual(selfProtectLoads(on, { ...lsm, enforcing: false }), false, "audit");
  strictEqual(selfProtectLoads(on, { ...lsm, mode: "fallback" }), false, "fallback");
  strictEqual(selfProtectLoads(on, { ...lsm, breakGlass: true }), false, "break-glass");
});

Deno.test("self-protect: armed only when enforcing with LSM, no break-glass, no emergency disable", () => {
  const ok = { decision: ENFORCE, breakGlass: false, emergencyActive: false };
  strictEqual(selfProtectRefusal(ok), null);
  const audit = { ...ENFORCE, state: "AUDIT_FALLBACK", enforcing: false } as StartDecision;
  strictEqual(selfProtectRefusal({ ...ok, decision: audit })?.includes("audit"), true);
  const fb = { ...ENFORCE, engine: "fallback" } as StartDecision;
  strictEqual(selfProtectRefusal({ ...ok, decision: fb })?.includes("fallback"), true);
  strictEqual(selfProtectRefusal({ ...ok, breakGlass: true }), "break-glass is active");
  strictEqual(selfProtectRefusal({ ...ok, emergencyActive: true }), "emergency disable is on");
});

Deno.test("no_new_privs: the kernel's answer is reported; a refused set reads the flag back; unreadable is null", () => {
  const calls: boolean[] = [];
  const shim = (set: (s: boolean) => boolean) => ({
    noNewPrivs: (s: boolean) => (calls.push(s), set(s)),
  });
  strictEqual(setNoNewPrivs(shim(() => true)), true);
  strictEqual(setNoNewPrivs(shim(() => false)), false, "set, yet the kernel says off");
  const refused = shim((s) => {
    if (s) throw new Error("EPERM");
    return false;
  });
  calls.length = 0;
  strictEqual(setNoNewPrivs(refused), false, "refused: what the kernel holds");
  strictEqual(calls.join(), "true,false");
  strictEqual(
    setNoNewPrivs(shim(() => {
      throw new Error("ENOSYS");
    })),
    null,
  );
});
