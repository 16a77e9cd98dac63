/**
 * Our JSON against the C++ agent's published contracts
 * (../shared/reference/aegisbpf-cpp-schemas, read as test data): what we
 * emit must validate, with one stated relaxation — properties of our own
 * beside theirs are accepted (`additionalProperties: false` relaxed, and
 * only that). Skipped, saying why, when that folder is not beside the
 * checkout. The deliberate differences (docs/posture.md, "Compatibility with
 * the C++ agent") are asserted as exactly what they are.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { EmergencyControl, emergencyStatusJson, toggleJson } from "../../src/control/emergency.ts";
import { DoctorBody } from "../../src/posture/doctor.ts";
import { HealthBody } from "../../src/posture/health.ts";
import { NO_NEEDS } from "../../src/posture/needs.ts";
import { openHostProbeDeps } from "../../src/posture/probes/host.ts";
import { probeAll } from "../../src/posture/probes/mod.ts";
import { buildReport, CapabilitiesReport, NO_POLICY } from "../../src/posture/report.ts";
import { LAUNCHER, run } from "../lib/helpers.ts";
import { cppSchema, validate } from "../lib/json_schema.ts";

const RELAX = { additionalProperties: true };
const emergencySchema = cppSchema("emergency_status.json");
const SKIP = "SKIPPED: ../shared/reference/aegisbpf-cpp-schemas is not beside this checkout";

Deno.test("json_schema: the checker finds what is wrong (it can fail)", () => {
  const s = {
    type: "object",
    additionalProperties: false,
    required: ["a"],
    properties: { a: { type: "integer", minimum: 0 }, b: { enum: ["x"] } },
  };
  deepStrictEqual(validate(s, { a: 1 }), []);
  deepStrictEqual(validate(s, { a: -1, b: "y", c: 1 }), [
    "$.a: -1 < 0",
    '$.b: "y" is not one of ["x"]',
    "$: unexpected property c",
  ]);
  deepStrictEqual(validate(s, { c: 1 }, RELAX), ["$: missing a"]);
  deepStrictEqual(validate(s, { a: null }), ["$.a: null is not integer"]);
});

Deno.test({
  name: emergencySchema === null
    ? `contract: emergency-status and emergency-* --json (${SKIP})`
    : "contract: emergency-status and emergency-* --json validate against the C++ schema",
  ignore: emergencySchema === null,
  fn: async () => {
    const dir = Deno.makeTempDirSync();
    try {
      let on = false;
      const ctl = new EmergencyControl({
        stateDir: dir,
        flag: { get: () => on, set: (v) => on = v },
        nodeName: "node-1",
      });
      const status = (loaded: boolean) =>
        emergencyStatusJson({ ...ctl.status(), agent_loaded: loaded, via: "daemon" });
      // never changed: no reason, no changer — left out, not null
      for (const loaded of [true, false]) {
        deepStrictEqual(validate(emergencySchema, status(loaded), RELAX), [], `loaded ${loaded}`);
      }
      const t = await ctl.toggle(true, "INC-1 drill", { uid: 0, pid: 4242 });
      deepStrictEqual(validate(emergencySchema, toggleJson(t, "daemon"), RELAX), []);
      const s = status(true);
      deepStrictEqual(validate(emergencySchema, s, RELAX), []);
      ok(s.enabled === true && s.kernel_enabled === true && s.uid === 0 && s.pid === 4242);
      ok(s.state_present === true && s.reason === "INC-1 drill");
      // what it catches: one of their required fields gone
      const { enabled: _, ...missing } = s;
      deepStrictEqual(validate(emergencySchema, missing, RELAX), ["$: missing enabled"]);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

// ---- capabilities.json, health --json, doctor --json (docs/posture.md, "Compatibility with the
// C++ agent"): real output of this checkout on this host

const capabilitiesSchema = cppSchema("capabilities_v1.json");
const healthSchema = cppSchema("health.json");
const doctorSchema = cppSchema("doctor.json");

/** The CLI with no daemon to ask: a private state directory and control socket. */
async function cliJson(args: string[]): Promise<{ code: number; body: Record<string, unknown> }> {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run(LAUNCHER, args, {
      ...Deno.env.toObject(),
      AEGIS_STATE_DIR: `${dir}/state`,
      AEGIS_CONTROL_SOCKET: `${dir}/control.sock`,
    });
    return { code: r.code, body: JSON.parse(r.stdout) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: capabilitiesSchema === null
    ? `contract: capabilities.json (${SKIP})`
    : "contract: capabilities.json built by the real probes on this host validates against the C++ schema",
  ignore: capabilitiesSchema === null,
  fn: async () => {
    // what the daemon writes here: real probes, a runtime state, the sections it attached
    using deps = await openHostProbeDeps();
    const probe = await probeAll({ ...deps });
    const input = {
      probe,
      needs: NO_NEEDS,
      transitions: { total: 1, degradation_total: 0, strict_mode: false, enforce_requested: true },
      policy: NO_POLICY,
      emergencyActive: false,
      generatedBy: "daemon" as const,
      now: Date.now() / 1000,
    };
    for (
      const [state, attached] of [
        ["AUDIT_FALLBACK", []],
        ["ENFORCE", ["lsm/file_open", "lsm/bprm_check_security", "lsm/inode_copy_up"]],
      ] as const
    ) {
      const report = buildReport({ ...input, runtimeState: state, attachedSections: attached });
      CapabilitiesReport.parse(report);
      deepStrictEqual(validate(capabilitiesSchema, report, RELAX), [], state);
    }
    // what it catches: a blocker as an object (the format before the C++ contract)
    const r = buildReport({ ...input, runtimeState: "AUDIT_FALLBACK", attachedSections: [] });
    if (r.enforce_blocker_details.length > 0) {
      deepStrictEqual(
        validate(capabilitiesSchema, { ...r, enforce_blockers: r.enforce_blocker_details }, RELAX)
          .length,
        r.enforce_blocker_details.length,
      );
    }
    deepStrictEqual(validate(capabilitiesSchema, { ...r, runtime_state: null }, RELAX), [
      "$.runtime_state: null is not string",
    ]);
  },
});

Deno.test({
  name: capabilitiesSchema === null
    ? `contract: capabilities --json without an agent (${SKIP})`
    : "contract: capabilities --json without an agent: valid but for runtime_state null (documented)",
  ignore: capabilitiesSchema === null,
  fn: async () => {
    const r = await cliJson(["capabilities", "--json"]);
    strictEqual(r.code, 0);
    CapabilitiesReport.parse(r.body);
    // the one deliberate difference: no agent, no state (docs/posture.md)
    deepStrictEqual(validate(capabilitiesSchema, r.body, RELAX), [
      "$.runtime_state: null is not string",
    ]);
  },
});

Deno.test({
  name: healthSchema === null || doctorSchema === null
    ? `contract: health --json and doctor --json (${SKIP})`
    : "contract: health --json and doctor --json (no agent: the local answer) validate against the C++ schemas",
  ignore: healthSchema === null || doctorSchema === null,
  fn: async () => {
    for (const args of [["health", "--json"], ["health", "--json", "--require-enforce"]]) {
      const h = await cliJson(args);
      strictEqual(h.code, 1, "no agent runs: not healthy");
      const body = HealthBody.parse(h.body);
      deepStrictEqual(validate(healthSchema, h.body, RELAX), [], args.join(" "));
      strictEqual(body.bpf_object_path, "embedded:aegis.bpf.o");
      strictEqual(body.bpf_hash_verified, true, "the embedded object verifies");
      strictEqual(body.daemon_running, false);
    }
    const d = await cliJson(["doctor", "--json"]);
    strictEqual(d.code, 1);
    const doctor = DoctorBody.parse(d.body);
    deepStrictEqual(validate(doctorSchema, d.body, RELAX), []);
    ok(doctor.advice.some((a) => a.code === "NO_DAEMON"));
    // what it catches: the former doctor shape ({health, advice})
    deepStrictEqual(validate(doctorSchema, { health: d.body.health, advice: [] }, RELAX), [
      "$: missing ok",
      "$: missing report",
    ]);
  },
});

// ---- events (docs/telemetry.md, "Differences from the C++ agent"): the emergency control_change
// events, toggled and reconciled at start (the host test checks the daemon's kernel events)

const eventSchema = cppSchema("event-schema.json");

Deno.test({
  name: eventSchema === null
    ? `contract: emergency control_change events (${SKIP})`
    : "contract: emergency control_change events (toggle, reconcile at start) validate against the C++ event schema",
  ignore: eventSchema === null,
  fn: async () => {
    const dir = Deno.makeTempDirSync();
    try {
      let on = false;
      const events: Record<string, unknown>[] = [];
      const deps = {
        stateDir: dir,
        flag: { get: () => on, set: (v: boolean) => on = v },
        nodeName: "node-1",
        bus: { emit: (e: Record<string, unknown>) => events.push(e) },
      };
      const ctl = new EmergencyControl(deps);
      await ctl.toggle(true, "INC-2 drill", { uid: 0, pid: 4242 });
      await ctl.toggle(false, "done", { uid: 0, pid: 4242 });
      on = true; // a fresh flag disagrees with the record (enable): put back at start
      new EmergencyControl(deps).reconcileAtStart();
      strictEqual(events.length, 3);
      strictEqual(events[2].reconciled_at_start, true);
      for (const e of events) {
        deepStrictEqual(validate(eventSchema, e, RELAX), [], String(e.action));
      }
      // what it catches: our storm count under its own name only (the former shape)
      const { storm_transitions_in_window: _, ...former } = events[0];
      deepStrictEqual(validate(eventSchema, former, RELAX), [
        "$: matches 0 of the oneOf alternatives, not 1",
      ]);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
