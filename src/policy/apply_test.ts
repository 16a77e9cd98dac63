import { ok } from "node:assert/strict";
import { ABI_LAYOUT } from "../bpf/abi_gen.ts";
import { RULE_MAPS } from "./apply.ts";

Deno.test("every rule map's key struct has a generation field", () => {
  for (const [map, struct] of Object.entries(RULE_MAPS)) {
    const fields = (ABI_LAYOUT.structs[struct] as { fields: Record<string, unknown> }).fields;
    ok("gen" in fields, `${map}: ${struct} has no gen`);
  }
});
