import { deepStrictEqual } from "node:assert/strict";
import { Cleanups } from "./shutdown.ts";

Deno.test("shutdown: steps run last pushed first, a failed one does not stop the rest", async () => {
  const ran: string[] = [];
  const c = new Cleanups();
  c.push(() => void ran.push("shim"));
  c.push(() => {
    ran.push("engine");
    throw new Error("close failed");
  });
  c.push(async () => {
    await Promise.resolve();
    ran.push("drain");
  });
  await c.run();
  deepStrictEqual(ran, ["drain", "engine", "shim"]);
});

Deno.test("shutdown: a second run runs only the steps pushed since (a refusal after a stop)", async () => {
  const ran: string[] = [];
  const c = new Cleanups();
  c.push(() => void ran.push("a"));
  await c.run();
  await c.run();
  c.push(() => void ran.push("b"));
  await c.run();
  deepStrictEqual(ran, ["a", "b"]);
});
