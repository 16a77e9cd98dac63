/**
 * Perf-SLO summary import (docs/telemetry.md): the benchmark suite's verdict file,
 * re-read on every metrics render and exported as
 * `aegisbpf_perf_slo_file_present`, `_gate_pass`, `_failed_rows` and
 * `_file_malformed`.
 *
 * Format (schemas/perf-slo-summary.schema.json is generated from the zod
 * schema below by build/gen_perf_slo_schema.ts):
 *
 *   {
 *     "gate_pass": true,
 *     "failed_rows": 0,                      // optional; counted from rows when absent
 *     "rows": [
 *       { "name": "events_json_file_sink", "metric": "events_per_second",
 *         "value": 412000, "threshold": 200000, "comparison": ">=",
 *         "unit": "1/s", "pass": true }
 *     ]
 *   }
 *
 * A row needs `name`, `value`, `threshold` and `pass`; `metric`, `unit`
 * and `comparison` are optional; unknown keys are kept (producers may add
 * fields). Unknown top-level keys are accepted too.
 *
 * Never reported as passing when in doubt: a file that is not JSON, does
 * not match the schema, is larger than 1 MiB, is not a regular file,
 * cannot be read, or claims `gate_pass: true` while rows failed is
 * *malformed*: present 1, malformed 1, gate_pass 0.
 *
 * @module
 */
import { z } from "zod";

export const PERF_SLO_MAX_BYTES = 1 << 20;

export const PerfSloRow = z.looseObject({
  name: z.string().min(1).describe("what was measured, e.g. events_json_file_sink"),
  metric: z.string().optional().describe("the quantity, e.g. events_per_second"),
  value: z.number().describe("measured value"),
  threshold: z.number().describe("the SLO bound"),
  comparison: z.enum(["<=", ">=", "<", ">", "=="]).optional()
    .describe("how value is compared with threshold"),
  unit: z.string().optional(),
  pass: z.boolean().describe("did this row meet its SLO"),
}).describe("one measured row");

export const PerfSloSummary = z.looseObject({
  gate_pass: z.boolean().describe("the whole gate passed"),
  rows: z.array(PerfSloRow),
  failed_rows: z.number().int().nonnegative().optional()
    .describe("rows that failed; counted from rows when absent"),
}).describe("aegisbpf perf-SLO summary (perf-slo-summary.json)");

export type PerfSloSummary = z.infer<typeof PerfSloSummary>;

/** What the metrics export about the file. */
export interface PerfSloStatus {
  present: boolean;
  malformed: boolean;
  /** why it is malformed (for logs and --detailed comments) */
  error: string | null;
  gatePass: boolean;
  failedRows: number;
  rows: number;
}

const ABSENT: PerfSloStatus = {
  present: false,
  malformed: false,
  error: null,
  gatePass: false,
  failedRows: 0,
  rows: 0,
};

function malformed(error: string, failedRows = 0, rows = 0): PerfSloStatus {
  return { present: true, malformed: true, error, gatePass: false, failedRows, rows };
}

/** Judge file contents (pure). */
export function parsePerfSlo(bytes: Uint8Array): PerfSloStatus {
  if (bytes.length > PERF_SLO_MAX_BYTES) {
    return malformed(`larger than ${PERF_SLO_MAX_BYTES} bytes`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    return malformed(`not JSON: ${(e as Error).message}`);
  }
  const r = PerfSloSummary.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    return malformed(`schema: ${i.path.join(".") || "(top)"}: ${i.message}`);
  }
  const s = r.data;
  const counted = s.rows.filter((row) => !row.pass).length;
  const failedRows = s.failed_rows ?? counted;
  if (s.gate_pass && (failedRows > 0 || counted > 0)) {
    return malformed(
      `gate_pass is true but ${Math.max(failedRows, counted)} rows failed`,
      Math.max(failedRows, counted),
      s.rows.length,
    );
  }
  return {
    present: true,
    malformed: false,
    error: null,
    gatePass: s.gate_pass,
    failedRows,
    rows: s.rows.length,
  };
}

/** Read and judge the file at `path` (missing → not present). Never throws. */
export async function readPerfSlo(path: string): Promise<PerfSloStatus> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return ABSENT;
    return malformed(`cannot open: ${(e as Error).message}`);
  }
  try {
    const st = await f.stat();
    if (!st.isFile) return malformed("not a regular file");
    // read at most one byte past the limit: a file growing meanwhile is still caught
    const buf = new Uint8Array(PERF_SLO_MAX_BYTES + 1);
    let n = 0;
    while (n < buf.length) {
      const got = await f.read(buf.subarray(n));
      if (got === null) break;
      n += got;
    }
    return parsePerfSlo(buf.subarray(0, n));
  } catch (e) {
    return malformed(`cannot read: ${(e as Error).message}`);
  } finally {
    f.close();
  }
}
