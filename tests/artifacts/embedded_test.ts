/**
 * Tier 1: the generated module embeds exactly the built artifacts.
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { BPF_OBJECT, SHIM } from "../../dist/gen/embedded.ts";
import { BPF_OBJECT_BASE64, SHIM_BASE64 } from "../../dist/gen/embedded_bytes.ts";
import { bpfObjectBytes } from "../../src/assets/mod.ts";
import { decodeBase64, sha256Hex } from "../../src/util/bytes.ts";
import { BPF_OBJ, NATIVE_DIR, SHIM_SO } from "../lib/helpers.ts";

Deno.test("embedded shim and object are byte-identical to dist/native", async () => {
  deepStrictEqual(decodeBase64(SHIM_BASE64), await Deno.readFile(SHIM_SO));
  deepStrictEqual(decodeBase64(BPF_OBJECT_BASE64), await Deno.readFile(BPF_OBJ));
});

Deno.test("recorded SHA-256 values match the manifest and the bytes", async () => {
  const manifest = JSON.parse(await Deno.readTextFile(`${NATIVE_DIR}/manifest.json`));
  strictEqual(SHIM.sha256, manifest.shim.sha256);
  strictEqual(BPF_OBJECT.sha256, manifest.bpf.sha256);
  strictEqual(await sha256Hex(await Deno.readFile(SHIM_SO)), SHIM.sha256);
  strictEqual(await sha256Hex(await bpfObjectBytes()), BPF_OBJECT.sha256);
});
