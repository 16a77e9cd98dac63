// deno-lint-ignore-file no-console -- a build tool: its output is for the person building
/**
 * Generates the shipped JSON Schemas (draft 2020-12) from the zod schemas,
 * the one definition of each format:
 *   schemas/capabilities.schema.json  src/posture/report.ts (capabilities.json)
 *   schemas/health.schema.json        src/posture/health.ts (health --json, GET /health)
 *   schemas/doctor.schema.json        src/posture/doctor.ts (doctor --json)
 *   schemas/events.schema.json        src/events/schema.ts (event lines, --event-format json)
 *   schemas/events-ocsf.schema.json   src/events/ocsf.ts (--event-format ocsf: the OCSF subset)
 *
 *   deno run -A build/gen_schemas.ts           write the shipped schemas
 *   deno run -A build/gen_schemas.ts --check   exit 1 when one is stale
 *
 * @module
 */
import { z } from "zod";
import { CapabilitiesReport, SCHEMA_SEMVER } from "../src/posture/report.ts";
import { HealthBody } from "../src/posture/health.ts";
import { DoctorBody } from "../src/posture/doctor.ts";
import { EventLine } from "../src/events/schema.ts";
import { OCSF_VERSION, OcsfEvent } from "../src/events/ocsf.ts";

const schemaPath = (name: string) => new URL(`../schemas/${name}`, import.meta.url).pathname;

export const CAPABILITIES_SCHEMA_PATH = schemaPath("capabilities.schema.json");
export const HEALTH_SCHEMA_PATH = schemaPath("health.schema.json");
export const DOCTOR_SCHEMA_PATH = schemaPath("doctor.schema.json");
export const EVENTS_SCHEMA_PATH = schemaPath("events.schema.json");
export const OCSF_SCHEMA_PATH = schemaPath("events-ocsf.schema.json");

const NOT_DETECTED = "Booleans the C++ agent's contract defines are false when not detected; " +
  "undetermined_fields lists those that could not be determined. Null in fields of our own " +
  "means the fact could not be determined.";

function render(
  schema: z.ZodType,
  name: string,
  title: string,
  source: string,
  note = NOT_DETECTED,
): string {
  const s = z.toJSONSchema(schema, { target: "draft-2020-12" });
  const doc = {
    $schema: s.$schema,
    $id: `https://aegisbpf.dev/schemas/${name}`,
    title,
    description: `Generated from ${source} by build/gen_schemas.ts. DO NOT EDIT. ${note}`,
    ...Object.fromEntries(Object.entries(s).filter(([k]) => k !== "$schema")),
  };
  return JSON.stringify(doc, null, 2) + "\n";
}

/** The shipped capabilities.json schema text (stable: same input, same bytes). */
export function renderCapabilitiesSchema(): string {
  return render(
    CapabilitiesReport,
    "capabilities.schema.json",
    `aegisbpf capabilities.json (schema_semver ${SCHEMA_SEMVER})`,
    "src/posture/report.ts",
  );
}

/** The shipped `health --json` schema text. */
export function renderHealthSchema(): string {
  return render(
    HealthBody,
    "health.schema.json",
    "aegisbpf health --json and GET /health",
    "src/posture/health.ts",
  );
}

/** The shipped `doctor --json` schema text. */
export function renderDoctorSchema(): string {
  return render(
    DoctorBody,
    "doctor.schema.json",
    "aegisbpf doctor --json",
    "src/posture/doctor.ts",
  );
}

/** The shipped event line schema (`--event-format json`, /events). */
export function renderEventsSchema(): string {
  return render(
    EventLine,
    "events.schema.json",
    "aegisbpf event lines (--event-format json, GET /events)",
    "src/events/schema.ts",
    "u64 values are JSON integers with their exact digits. docs/telemetry.md describes the " +
      "fields; objects are open: a later version may add fields.",
  );
}

/** The shipped schema of the OCSF subset `--event-format ocsf` writes. */
export function renderOcsfSchema(): string {
  return render(
    OcsfEvent,
    "events-ocsf.schema.json",
    `aegisbpf event lines with --event-format ocsf (the subset of OCSF ${OCSF_VERSION} emitted)`,
    "src/events/ocsf.ts",
    "type_uid is class_uid * 100 + activity_id. docs/telemetry.md has the mapping.",
  );
}

const SCHEMAS: [string, () => string][] = [
  [CAPABILITIES_SCHEMA_PATH, renderCapabilitiesSchema],
  [HEALTH_SCHEMA_PATH, renderHealthSchema],
  [DOCTOR_SCHEMA_PATH, renderDoctorSchema],
  [EVENTS_SCHEMA_PATH, renderEventsSchema],
  [OCSF_SCHEMA_PATH, renderOcsfSchema],
];

if (import.meta.main) {
  let stale = 0;
  for (const [path, renderer] of SCHEMAS) {
    const text = renderer();
    if (Deno.args.includes("--check")) {
      let shipped = "";
      try {
        shipped = Deno.readTextFileSync(path);
      } catch { /* missing counts as stale */ }
      if (shipped !== text) {
        console.error(`${path} is stale: run "deno run -A build/gen_schemas.ts" and commit it`);
        stale++;
      } else console.log(`${path} is up to date`);
    } else {
      Deno.mkdirSync(new URL("../schemas/", import.meta.url), { recursive: true });
      Deno.writeTextFileSync(path, text);
      console.log(`wrote ${path}`);
    }
  }
  if (stale > 0) Deno.exit(1);
}
