import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { ABI_LAYOUT } from "./abi_gen.ts";
import { COMM_MAX_BYTES, commKey } from "./exec_codec.ts";
import { UsageError } from "../errors.ts";

const K = ABI_LAYOUT.structs.aegis_comm_key;

Deno.test("commKey: comm bytes, NUL-padded, then gen and a zero pad (little endian)", () => {
  const k = commKey("nc", 1);
  strictEqual(k.length, 24);
  strictEqual(K.size, 24);
  const want = new Uint8Array(24);
  want.set([0x6e, 0x63], 0);
  want[16] = 1;
  deepStrictEqual(k, want);
});

Deno.test("commKey: 15 bytes is the longest accepted comm", () => {
  strictEqual(COMM_MAX_BYTES, 15);
  const k = commKey("a".repeat(15), 0);
  strictEqual(k[14], 0x61);
  strictEqual(k[15], 0, "the kernel comm always ends with a NUL");
  strictEqual(new DataView(k.buffer).getUint32(K.fields.gen.offset, true), 0);
});

Deno.test("commKey: multi-byte UTF-8 counts bytes, not characters", () => {
  // 5 × "é" = 10 bytes fits; 8 × "é" = 16 bytes does not
  strictEqual(commKey("é".repeat(5), 0)[9], 0xa9);
  throws(() => commKey("é".repeat(8), 0), /16 bytes, the kernel keeps at most 15/);
});

Deno.test("commKey: rejects what can never match, with a UsageError", () => {
  throws(() => commKey("", 0), (e: unknown) => e instanceof UsageError && /empty/.test(e.message));
  throws(
    () => commKey("a".repeat(16), 0),
    (e: unknown) => e instanceof UsageError && /"a{16}": 16 bytes/.test(e.message),
  );
  throws(
    () => commKey("ba\0d", 0),
    (e: unknown) => e instanceof UsageError && /NUL/.test(e.message),
  );
  throws(
    () => commKey("/usr/bin/nc", 0),
    (e: unknown) => e instanceof UsageError && /basename/.test(e.message),
  );
  throws(() => commKey("nc", -1), UsageError);
  throws(() => commKey("nc", 2 ** 32), UsageError);
});
