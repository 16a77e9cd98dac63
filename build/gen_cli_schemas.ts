/**
 * Writes schemas/cli-output.schema.json from the zod schemas in
 * src/cli/json_output.ts (the single definition of what those commands
 * print with --json): one JSON Schema (draft 2020-12) with a definition per
 * command under `$defs`, and the failure object every command prints.
 * src/cli/json_output_test.ts fails when the shipped file is stale.
 *
 *   deno run -A build/gen_cli_schemas.ts
 *
 * @module
 */
import { z } from "zod";
import { CLI_JSON_OUTPUTS } from "../src/cli/json_output.ts";

export const CLI_SCHEMA_PATH = new URL("../schemas/cli-output.schema.json", import.meta.url);

/** The shipped JSON Schema text (same schemas, same bytes). */
export function cliSchemaText(): string {
  const defs: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(CLI_JSON_OUTPUTS)) {
    const { $schema: _, ...rest } = z.toJSONSchema(schema, { target: "draft-2020-12" });
    defs[name.replace(/ /g, "_")] = rest;
  }
  return JSON.stringify(
    {
      $schema: "https://json-schema.org/draft/2020-12/schema",
      $id: "https://aegisbpf.dev/schemas/cli-output.schema.json",
      title: "aegisbpf CLI --json output (docs/cli.md)",
      description:
        "Generated from src/cli/json_output.ts by build/gen_cli_schemas.ts. DO NOT EDIT. " +
        "One object per invocation: the command's definition below, or `failure`.",
      anyOf: Object.keys(defs).map((k) => ({ $ref: `#/$defs/${k}` })),
      $defs: defs,
    },
    null,
    2,
  ) + "\n";
}

if (import.meta.main) {
  await Deno.writeTextFile(CLI_SCHEMA_PATH, cliSchemaText());
}
