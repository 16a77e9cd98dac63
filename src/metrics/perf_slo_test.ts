import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { perfSloSchemaText, SCHEMA_PATH } from "../../build/gen_perf_slo_schema.ts";
import { parsePerfSlo, PERF_SLO_MAX_BYTES, readPerfSlo } from "./perf_slo.ts";

const enc = new TextEncoder();
const j = (v: unknown) => enc.encode(JSON.stringify(v));
const row = (name: string, pass: boolean) => ({ name, value: 1, threshold: 2, pass });

Deno.test("perf-slo: a passing summary", () => {
  deepStrictEqual(parsePerfSlo(j({ gate_pass: true, rows: [row("a", true), row("b", true)] })), {
    present: true,
    malformed: false,
    error: null,
    gatePass: true,
    failedRows: 0,
    rows: 2,
  });
});

Deno.test("perf-slo: failed_rows counted from rows when absent, taken when given", () => {
  const s = parsePerfSlo(j({ gate_pass: false, rows: [row("a", false), row("b", false)] }));
  strictEqual(s.failedRows, 2);
  strictEqual(s.gatePass, false);
  strictEqual(s.malformed, false);
  strictEqual(parsePerfSlo(j({ gate_pass: false, rows: [], failed_rows: 3 })).failedRows, 3);
});

Deno.test("perf-slo: unknown keys in rows and at the top are accepted", () => {
  const s = parsePerfSlo(j({
    gate_pass: true,
    generated_by: "bench/run.sh",
    rows: [{ ...row("a", true), unit: "ns", comparison: "<=", p99: 5 }],
  }));
  strictEqual(s.malformed, false);
  strictEqual(s.gatePass, true);
});

Deno.test("perf-slo: malformed is never passing", () => {
  const cases: [string, Uint8Array][] = [
    ["not JSON", enc.encode('{"gate_pass": true,')],
    ["not UTF-8", new Uint8Array([0x7b, 0xff, 0x7d])],
    ["gate_pass a string", j({ gate_pass: "true", rows: [] })],
    ["rows missing", j({ gate_pass: true })],
    ["row without pass", j({ gate_pass: true, rows: [{ name: "a", value: 1, threshold: 1 }] })],
    ["negative failed_rows", j({ gate_pass: false, rows: [], failed_rows: -1 })],
    ["array at the top", j([{ gate_pass: true, rows: [] }])],
    ["claims pass with failed rows", j({ gate_pass: true, rows: [row("a", false)] })],
    ["claims pass with failed_rows", j({ gate_pass: true, rows: [], failed_rows: 2 })],
    ["too large", j({ gate_pass: true, rows: [], pad: "x".repeat(PERF_SLO_MAX_BYTES) })],
  ];
  for (const [what, bytes] of cases) {
    const s = parsePerfSlo(bytes);
    strictEqual(s.present, true, what);
    strictEqual(s.malformed, true, what);
    strictEqual(s.gatePass, false, what);
    ok(s.error && s.error.length > 0, what);
  }
  strictEqual(
    parsePerfSlo(j({ gate_pass: true, rows: [row("a", false), row("b", false)] })).failedRows,
    2,
  );
});

Deno.test("perf-slo: read from disk: missing, good, replaced (re-read each time), directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aegis-slo-" });
  try {
    const p = `${dir}/perf-slo-summary.json`;
    deepStrictEqual((await readPerfSlo(p)).present, false);
    await Deno.writeTextFile(p, JSON.stringify({ gate_pass: true, rows: [row("a", true)] }));
    strictEqual((await readPerfSlo(p)).gatePass, true);
    await Deno.writeTextFile(p, "garbage");
    const s = await readPerfSlo(p);
    strictEqual(s.malformed, true);
    strictEqual(s.gatePass, false);
    await Deno.writeTextFile(
      p,
      JSON.stringify({ gate_pass: true, rows: [], x: "y".repeat(2 << 20) }),
    );
    strictEqual((await readPerfSlo(p)).error, `larger than ${PERF_SLO_MAX_BYTES} bytes`);
    strictEqual((await readPerfSlo(dir)).malformed, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("perf-slo: the shipped JSON Schema is the one generated from the zod schema", async () => {
  strictEqual(await Deno.readTextFile(SCHEMA_PATH), perfSloSchemaText());
});
