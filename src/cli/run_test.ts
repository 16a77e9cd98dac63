import { strictEqual, throws } from "node:assert/strict";
import { AegisError } from "../errors.ts";
import { parseProofInterval } from "./run.ts";

Deno.test("--proof-interval: whole seconds 0..86400, anything else a usage error naming the flag", () => {
  strictEqual(parseProofInterval("30"), 30);
  strictEqual(parseProofInterval("0"), 0);
  strictEqual(parseProofInterval("86400"), 86400);
  for (
    const bad of ["-1", "1.5", "86401", "abc", "", "1e3", "0x10", "constructor", "9".repeat(400)]
  ) {
    throws(
      () => parseProofInterval(bad),
      (e: unknown) =>
        e instanceof AegisError && e.code === "USAGE" && e.message.includes("--proof-interval"),
      JSON.stringify(bad),
    );
  }
});
