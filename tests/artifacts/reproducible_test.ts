/**
 * Tier 1 (artifacts): the native outputs do not depend on the checkout path.
 * build/native.sh runs in two copies of the tree at directories of different
 * names and lengths (sharing the cached libbpf/libelf builds of this checkout,
 * .cache/native, through AEGIS_NATIVE_CACHE); the shim, the BPF object and the
 * manifest must be byte-identical, and neither copy's path may appear in them.
 * See docs/build.md "Reproducibility".
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { sha256Hex } from "../../src/util/bytes.ts";
import { ROOT } from "../lib/helpers.ts";

const OUTPUTS = ["libaegis_shim.so", "aegis.bpf.o", "manifest.json"];

async function copyTree(dest: string): Promise<void> {
  await Deno.mkdir(dest, { recursive: true });
  // The working tree's native inputs (in CI the working tree is the commit).
  const r = await new Deno.Command("cp", {
    args: ["-a", `${ROOT}/bpf`, `${ROOT}/ffi`, `${ROOT}/build`, dest],
    stderr: "piped",
  }).output();
  strictEqual(r.code, 0, new TextDecoder().decode(r.stderr));
}

async function buildNative(tree: string): Promise<Map<string, string>> {
  const r = await new Deno.Command("bash", {
    args: [`${tree}/build/native.sh`],
    env: { AEGIS_NATIVE_CACHE: `${ROOT}/.cache/native` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const td = new TextDecoder();
  strictEqual(r.code, 0, `native.sh in ${tree}:\n${td.decode(r.stdout)}\n${td.decode(r.stderr)}`);
  const hashes = new Map<string, string>();
  for (const f of OUTPUTS) {
    hashes.set(f, await sha256Hex(await Deno.readFile(`${tree}/dist/native/${f}`)));
  }
  return hashes;
}

function contains(hay: Uint8Array, needle: string): boolean {
  const n = new TextEncoder().encode(needle);
  outer: for (let i = 0; i + n.length <= hay.length; i++) {
    for (let j = 0; j < n.length; j++) if (hay[i + j] !== n[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("two checkouts at different paths build byte-identical native outputs", async () => {
  const base = await Deno.makeTempDir({ prefix: "aegis-repro-" });
  try {
    const a = `${base}/a`;
    const b = `${base}/another/much-longer-checkout-path`;
    await copyTree(a);
    await copyTree(b);
    const ha = await buildNative(a);
    const hb = await buildNative(b);
    deepStrictEqual([...hb], [...ha], "SHA-256 of the outputs differ between checkouts");
    for (const tree of [a, b]) {
      for (const f of ["libaegis_shim.so", "aegis.bpf.o"]) {
        const bytes = await Deno.readFile(`${tree}/dist/native/${f}`);
        for (const path of [a, b, ROOT, base]) {
          ok(!contains(bytes, path), `${tree}/dist/native/${f} contains the path ${path}`);
        }
      }
    }
    // The BTF line info still names the sources (relative), so the mapping
    // rewrote the paths rather than dropping them.
    const obj = await Deno.readFile(`${a}/dist/native/aegis.bpf.o`);
    ok(contains(obj, "bpf/file.bpf.c"), "aegis.bpf.o no longer names bpf/file.bpf.c");
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
