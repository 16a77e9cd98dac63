// deno-lint-ignore-file no-console -- a build tool: its output is for the person building
/**
 * Generates schemas/capabilities.schema.json (JSON Schema, draft 2020-12)
 * from the zod schema in src/posture/report.ts, the one definition of
 * capabilities.json.
 *
 *   deno run -A build/gen_schemas.ts           write the shipped schema
 *   deno run -A build/gen_schemas.ts --check   exit 1 when it is stale
 *
 * @module
 */
import { z } from "zod";
import { CapabilitiesReport, SCHEMA_SEMVER } from "../src/posture/report.ts";

export const CAPABILITIES_SCHEMA_PATH = new URL(
  "../schemas/capabilities.schema.json",
  import.meta.url,
).pathname;

/** The shipped JSON Schema text (stable: same input, same bytes). */
export function renderCapabilitiesSchema(): string {
  const schema = z.toJSONSchema(CapabilitiesReport, { target: "draft-2020-12" });
  const doc = {
    $schema: schema.$schema,
    $id: "https://aegisbpf.dev/schemas/capabilities.schema.json",
    title: `aegisbpf capabilities.json (schema_semver ${SCHEMA_SEMVER})`,
    description: "Generated from src/posture/report.ts by build/gen_schemas.ts. DO NOT EDIT. " +
      "Null booleans mean the fact could not be determined.",
    ...Object.fromEntries(Object.entries(schema).filter(([k]) => k !== "$schema")),
  };
  return JSON.stringify(doc, null, 2) + "\n";
}

if (import.meta.main) {
  const text = renderCapabilitiesSchema();
  if (Deno.args.includes("--check")) {
    let shipped = "";
    try {
      shipped = Deno.readTextFileSync(CAPABILITIES_SCHEMA_PATH);
    } catch { /* missing counts as stale */ }
    if (shipped !== text) {
      console.error(
        `${CAPABILITIES_SCHEMA_PATH} is stale: run "deno run -A build/gen_schemas.ts" and commit it`,
      );
      Deno.exit(1);
    }
    console.log(`${CAPABILITIES_SCHEMA_PATH} is up to date`);
  } else {
    Deno.mkdirSync(new URL("../schemas/", import.meta.url), { recursive: true });
    Deno.writeTextFileSync(CAPABILITIES_SCHEMA_PATH, text);
    console.log(`wrote ${CAPABILITIES_SCHEMA_PATH}`);
  }
}
