import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { selfProtectLoads } from "./engine_start.ts";
import type { StartDecision } from "./probe_gate.ts";
import { installSeccomp, selfProtectRefusal, setNoNewPrivs } from "./self_protect.ts";

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

Deno.test("seccomp: enforce and log install with their count; off installs nothing; a refusal is reported, not thrown", () => {
  const asked: string[] = [];
  const shim = (r: () => number) => ({
    seccompInstall: (m: "enforce" | "log") => (asked.push(m), r()),
  });
  const on = installSeccomp(shim(() => 141), "enforce");
  deepStrictEqual({ ...on, detail: "" }, {
    mode: "enforce",
    installed: true,
    syscalls: 141,
    detail: "",
  });
  strictEqual(on.detail.includes("ENOSYS"), true, on.detail);
  const lg = installSeccomp(shim(() => 141), "log");
  strictEqual(lg.installed, true);
  strictEqual(lg.detail.includes("allowed and logged"), true, lg.detail);
  deepStrictEqual(asked, ["enforce", "log"]);
  const off = installSeccomp(shim(() => 1), "off");
  deepStrictEqual(off, { mode: "off", installed: false, syscalls: 0, detail: "run --seccomp off" });
  strictEqual(asked.length, 2, "off never calls the shim");
  const refused = installSeccomp(
    shim(() => {
      throw new Error("aegis_seccomp_install failed: ENOTSUP (95)");
    }),
    "enforce",
  );
  deepStrictEqual(refused, {
    mode: "enforce",
    installed: false,
    syscalls: 0,
    detail: "not installed: aegis_seccomp_install failed: ENOTSUP (95)",
  });
});
