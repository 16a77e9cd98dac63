/**
 * The import direction of src/ (docs/architecture.md, "Layers"): a module
 * imports only modules of its own folder or of a lower layer, and the
 * shipped code never reads the AEGIS_TEST_* fault-injection variables
 * (tests/lib/agent_main.ts does, and injects the faults; docs/testing.md)
 * nor imports a test helper (`*_testing.ts`, the one name for helpers that
 * live beside the code).
 */
import { deepStrictEqual } from "node:assert/strict";

const SRC = new URL("./", import.meta.url).pathname;

/**
 * Lowest first. A folder may import its own files and any folder to its
 * left; `core` is src/*.ts (errors, errno, log, contracts), `main` is
 * src/main.ts.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ["core"],
  ["util", "net"],
  ["native"],
  ["bpf"],
  ["assets", "events", "policy"],
  ["proof"],
  ["posture", "metrics", "http"],
  ["control"],
  ["daemon"],
  ["cli"],
  ["main"],
];

function layerOf(folder: string): number {
  const i = LAYERS.findIndex((l) => l.includes(folder));
  if (i < 0) throw new Error(`src/${folder} has no layer in LAYERS (docs/architecture.md)`);
  return i;
}

function folderOf(rel: string): string {
  if (rel === "main.ts") return "main";
  return rel.includes("/") ? rel.split("/")[0] : "core";
}

function* sources(dir = SRC, rel = ""): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) yield* sources(`${dir}${e.name}/`, r);
    else if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) yield r; // helpers too
  }
}

function normalize(from: string, spec: string): string | null {
  if (!spec.startsWith(".")) return null;
  const parts = from.split("/").slice(0, -1);
  for (const p of spec.split("/")) {
    if (p === "..") {
      if (parts.length === 0) return null; // outside src/ (dist/gen, generated at build)
      parts.pop();
    } else if (p !== ".") parts.push(p);
  }
  return parts.join("/");
}

/** Upward imports: "from → to" for every import of a higher layer. */
export function upwardImports(files: Map<string, string>): string[] {
  const bad: string[] = [];
  for (const [rel, text] of files) {
    const from = folderOf(rel);
    for (const m of text.matchAll(/(?:from|import\()\s*"([^"]+)"/g)) {
      const target = normalize(rel, m[1]);
      if (target === null) continue; // npm:, node:, dist/gen
      const to = folderOf(target);
      if (to !== from && layerOf(to) >= layerOf(from)) bad.push(`${rel} → ${target}`);
    }
  }
  return bad;
}

function readAll(): Map<string, string> {
  const m = new Map<string, string>();
  for (const rel of sources()) m.set(rel, Deno.readTextFileSync(`${SRC}${rel}`));
  return m;
}

Deno.test("src/ imports point down the layers of docs/architecture.md", () => {
  deepStrictEqual(upwardImports(readAll()), []);
});

Deno.test("the import check catches an upward and a sideways import (it can fail)", () => {
  deepStrictEqual(
    upwardImports(
      new Map([
        ["bpf/x.ts", 'import { a } from "../daemon/daemon.ts";'],
        ["posture/y.ts", 'import { b } from "../http/app.ts";'],
        ["cli/z.ts", 'import { c } from "../daemon/daemon.ts";\nimport "npm:zod";'],
        ["errors.ts", 'import { d } from "./native/shim.ts";'],
      ]),
    ),
    ["bpf/x.ts → daemon/daemon.ts", "posture/y.ts → http/app.ts", "errors.ts → native/shim.ts"],
  );
});

Deno.test("no shipped file reads an AEGIS_TEST_* variable (faults come in through DaemonOptions)", () => {
  const readers = [...readAll()].filter(([, t]) => /AEGIS_TEST_[A-Z_]+/.test(t)).map(([r]) => r);
  deepStrictEqual(readers, []);
});

/** Test helpers beside the code are named *_testing.ts; no shipped file may import one. */
export function shippedImportsOfHelpers(files: Map<string, string>): string[] {
  const bad: string[] = [];
  for (const [rel, text] of files) {
    if (rel.endsWith("_testing.ts")) continue;
    for (const m of text.matchAll(/(?:from|import\()\s*"([^"]+)"/g)) {
      if (m[1].endsWith("_testing.ts")) bad.push(`${rel} → ${m[1]}`);
    }
  }
  return bad;
}

Deno.test("no shipped file imports a test helper (*_testing.ts)", () => {
  deepStrictEqual(shippedImportsOfHelpers(readAll()), []);
  deepStrictEqual(
    shippedImportsOfHelpers(
      new Map([["bpf/a.ts", 'import { f } from "../policy/fake_maps_testing.ts";']]),
    ),
    ["bpf/a.ts → ../policy/fake_maps_testing.ts"],
    "the check can fail",
  );
});
