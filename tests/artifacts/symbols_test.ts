/**
 * Tier 1: the built shim and the TypeScript symbol table agree.
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { symbols } from "../../src/native/symbols.ts";
import { ROOT, run, SHIM_SO } from "../lib/helpers.ts";

/** name -> parameter count, parsed from the C header's prototypes. */
async function headerPrototypes(): Promise<Map<string, number>> {
  const text = (await Deno.readTextFile(`${ROOT}/ffi/aegis_shim.h`))
    .replace(/\/\*[\s\S]*?\*\//g, "");
  const out = new Map<string, number>();
  const re = /\b(aegis_[a-z0-9_]+)\s*\(([^)]*)\)\s*;/g;
  for (const m of text.matchAll(re)) {
    const params = m[2].trim();
    out.set(m[1], params === "void" || params === "" ? 0 : params.split(",").length);
  }
  return out;
}

Deno.test("every symbol in the table resolves in the built shim", () => {
  const lib = Deno.dlopen(SHIM_SO, symbols);
  try {
    for (const name of Object.keys(symbols)) {
      strictEqual(typeof (lib.symbols as Record<string, unknown>)[name], "function", name);
    }
  } finally {
    lib.close();
  }
});

Deno.test("the table, the header and the shim's exports name the same functions", async () => {
  const header = await headerPrototypes();
  const nm = await run("nm", ["-D", "--defined-only", SHIM_SO]);
  strictEqual(nm.code, 0, nm.stderr);
  const exported = nm.stdout.split("\n").map((l) => l.trim().split(/\s+/)[2]).filter((s) =>
    s?.startsWith("aegis_")
  ).sort();
  deepStrictEqual(Object.keys(symbols).sort(), [...header.keys()].sort());
  deepStrictEqual(exported, [...header.keys()].sort());
});

Deno.test("each table entry has the arity of its C prototype", async () => {
  const header = await headerPrototypes();
  for (const [name, def] of Object.entries(symbols)) {
    strictEqual(def.parameters.length, header.get(name), `${name} arity`);
  }
});

Deno.test("the shim needs only libc and libz at run time (no libbpf, no libelf)", async () => {
  const r = await run("readelf", ["-d", SHIM_SO]);
  const needed = [...r.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) =>
    m[1]
  )
    .sort();
  deepStrictEqual(needed.filter((n) => !/^(libc|libz)\.so|^ld-linux/.test(n)), []);
});
