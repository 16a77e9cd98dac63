/**
 * Writes schemas/perf-slo-summary.schema.json from the zod schema in
 * src/metrics/perf_slo.ts (the single definition). With --check, exits 1
 * when the shipped file differs instead of writing it.
 *
 *   deno run -A build/gen_perf_slo_schema.ts [--check]
 *
 * @module
 */
import { z } from "zod";
import { PerfSloSummary } from "../src/metrics/perf_slo.ts";

export const SCHEMA_PATH = new URL("../schemas/perf-slo-summary.schema.json", import.meta.url);

/** The JSON Schema text, as shipped. */
export function perfSloSchemaText(): string {
  const schema = z.toJSONSchema(PerfSloSummary, { target: "draft-2020-12" });
  return JSON.stringify({ title: "aegisbpf perf-slo-summary.json", ...schema }, null, 2) + "\n";
}

if (import.meta.main) {
  const text = perfSloSchemaText();
  if (Deno.args.includes("--check")) {
    let shipped = "";
    try {
      shipped = await Deno.readTextFile(SCHEMA_PATH);
    } catch { /* missing: stale */ }
    if (shipped !== text) {
      await Deno.stderr.write(
        new TextEncoder().encode(
          "schemas/perf-slo-summary.schema.json is stale: run deno run -A build/gen_perf_slo_schema.ts\n",
        ),
      );
      Deno.exit(1);
    }
  } else {
    await Deno.writeTextFile(SCHEMA_PATH, text);
  }
}
