/**
 * Our JSON against the C++ agent's published contracts
 * (../shared/reference/aegisbpf-cpp-schemas, read as test data): what we
 * emit must validate, with one stated relaxation — properties of our own
 * beside theirs are accepted (`additionalProperties: false` relaxed, and
 * only that). Skipped, saying why, when that folder is not beside the
 * checkout.
 */
import { deepStrictEqual, ok } from "node:assert/strict";
import { EmergencyControl, emergencyStatusJson, toggleJson } from "../../src/control/emergency.ts";
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
