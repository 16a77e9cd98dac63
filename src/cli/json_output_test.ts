import { ok, strictEqual } from "node:assert/strict";
import { CLI_SCHEMA_PATH, cliSchemaText } from "../../build/gen_cli_schemas.ts";
import { JsonFailure, PolicyValidateJson } from "./json_output.ts";
import { jsonFailure } from "./mod.ts";

Deno.test("schemas/cli-output.schema.json is up to date (deno run -A build/gen_cli_schemas.ts)", () => {
  strictEqual(Deno.readTextFileSync(CLI_SCHEMA_PATH), cliSchemaText());
});

Deno.test("the failure object main() prints fits its schema; extra fields are refused", () => {
  ok(JsonFailure.safeParse(jsonFailure("USAGE", "bad")).success);
  ok(JsonFailure.safeParse(jsonFailure("POLICY_INVALID", "x", { errors: [] })).success);
  ok(!JsonFailure.safeParse({ ok: false, error: { code: "X" } }).success, "message required");
  ok(
    !PolicyValidateJson.safeParse({ ok: true, file: "f", version: 1, warnings: [], x: 1 }).success,
  );
});
