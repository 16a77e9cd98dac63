/**
 * Tier 1: the ABI codecs are generated from the header, and the built BPF
 * object's BTF has the same layouts.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { abiLayoutFromBtf } from "../../build/abi_layout.ts";
import { ABI_LAYOUT, MAP_NAMES, PROGRAM_NAMES } from "../../src/bpf/abi_gen.ts";
import { BPF_OBJ, btfOf, ROOT, run } from "../lib/helpers.ts";

Deno.test("src/bpf/abi_gen.ts is up to date with bpf/include/aegis_abi.h", async () => {
  const r = await run(Deno.execPath(), ["run", "-A", `${ROOT}/build/gen_abi.ts`, "--check"]);
  strictEqual(r.code, 0, r.stderr + r.stdout);
});

Deno.test("every ABI struct present in the BPF object's BTF matches the codecs", async () => {
  const btf = await btfOf(BPF_OBJ) as { types: { kind: string; name?: string }[] };
  const inObject = new Set(btf.types.filter((t) => t.kind === "STRUCT").map((t) => t.name));
  const checked: string[] = [];
  for (const name of Object.keys(ABI_LAYOUT.structs)) {
    if (!inObject.has(name)) continue;
    // Re-root the layout walk at this struct in the object's own BTF.
    const types = (btf as { types: { id: number; kind: string; name?: string }[] }).types;
    const anchorId = types.find((t) => t.kind === "STRUCT" && t.name === name)!.id;
    const wrapped = {
      types: [...types, {
        id: 1e9,
        kind: "STRUCT",
        name: "__anchor",
        size: 0,
        vlen: 1,
        members: [{ name: "x", type_id: anchorId, bits_offset: 0 }],
      }],
    };
    const fromObject = abiLayoutFromBtf(wrapped, "__anchor").structs[name];
    deepStrictEqual(fromObject, (ABI_LAYOUT.structs as Record<string, unknown>)[name], name);
    checked.push(name);
  }
  // The records the kernel writes and the map keys it reads must be among them.
  for (const must of ["aegis_ev_hdr", "aegis_ev_exec", "aegis_ev_open", "aegis_inode_key"]) {
    ok(checked.includes(must), `${must} not found in the object's BTF (checked: ${checked})`);
  }
});

Deno.test("MAP_NAMES and PROGRAM_NAMES are exactly the object's maps and programs", async () => {
  const btf = await btfOf(BPF_OBJ) as {
    types: {
      id: number;
      kind: string;
      name?: string;
      linkage?: string;
      vars?: { type_id: number }[];
    }[];
  };
  const byId = new Map(btf.types.map((t) => [t.id, t]));
  const maps = btf.types.find((t) => t.kind === "DATASEC" && t.name === ".maps");
  ok(maps?.vars, "no .maps section in the object's BTF");
  deepStrictEqual(
    maps.vars.map((v) => byId.get(v.type_id)?.name).sort(),
    [...MAP_NAMES].sort(),
  );
  // global functions: the programs, and aegis_abi_types (bpf/aegis.bpf.c), a
  // __noinline subprogram that only anchors the ABI structs in the BTF
  const programs = btf.types.filter((t) => t.kind === "FUNC" && t.linkage === "global")
    .map((t) => t.name).filter((n) => n !== "aegis_abi_types");
  deepStrictEqual(programs.sort(), [...PROGRAM_NAMES]);
});
