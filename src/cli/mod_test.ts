import { deepStrictEqual } from "node:assert/strict";
import { buildProgram, COMMAND_NAMES } from "./mod.ts";

Deno.test("the lazy command table names exactly the commands the files add", async () => {
  const all = await buildProgram();
  deepStrictEqual(all.commands.map((c) => c.name()), [...COMMAND_NAMES]);
});

Deno.test("a named command loads only its own file; an unknown name loads them all", async () => {
  deepStrictEqual((await buildProgram("emergency-status")).commands.map((c) => c.name()), [
    "emergency-disable",
    "emergency-enable",
    "emergency-status",
    "break-glass",
  ]);
  deepStrictEqual((await buildProgram("policy")).commands.map((c) => c.name()), ["policy"]);
  deepStrictEqual(
    (await buildProgram("--help")).commands.map((c) => c.name()),
    [...COMMAND_NAMES],
  );
  deepStrictEqual(
    (await buildProgram("constructor")).commands.map((c) => c.name()),
    [...COMMAND_NAMES],
  );
});
