/**
 * The store's repair of an apply killed between policy.applied and its
 * commit point (policy.sha256): only that exact state is undone.
 */
import { strictEqual } from "node:assert/strict";
import { keepSnapshots, readAppliedPolicy, repairInterruptedApply } from "./store.ts";
import { sha256Hex } from "../util/bytes.ts";

const enc = new TextEncoder();
const A = enc.encode("version=1\n[deny_path]\n/etc/a\n");
const B = enc.encode("version=1\n[deny_path]\n/etc/b\n");
const sha = (b: Uint8Array) => sha256Hex(new Uint8Array(b));
const text = (p: string) => Deno.readTextFileSync(p);
const NO_KEYS = { dir: "/nonexistent-aegis-keys" };

Deno.test("an apply killed before its commit point: the previous body is the applied one again", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    keepSnapshots(dir, A, await sha(A));
    // what keepSnapshots(B) leaves when killed after policy.applied, before policy.sha256
    Deno.writeFileSync(`${dir}/policy.prev`, A);
    Deno.writeFileSync(`${dir}/policy.applied`, B);
    const said = await repairInterruptedApply(dir);
    strictEqual(said?.includes("interrupted before its commit point"), true, String(said));
    strictEqual(text(`${dir}/policy.applied`), new TextDecoder().decode(A));
    strictEqual((await readAppliedPolicy(dir, NO_KEYS, false))?.sha, await sha(A));
    strictEqual(await repairInterruptedApply(dir), null, "repaired once, then nothing to do");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("the repair leaves every other state alone (a committed apply, a damaged store)", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    strictEqual(await repairInterruptedApply(dir), null, "nothing stored");
    keepSnapshots(dir, A, await sha(A));
    keepSnapshots(dir, B, await sha(B));
    strictEqual(await repairInterruptedApply(dir), null, "a committed apply");
    strictEqual(text(`${dir}/policy.applied`), new TextDecoder().decode(B));
    // a body that matches neither the record nor policy.prev: damage, refused at restore
    Deno.writeFileSync(`${dir}/policy.applied`, enc.encode("version=1\n"));
    strictEqual(await repairInterruptedApply(dir), null, "damage is not repaired");
    strictEqual(text(`${dir}/policy.applied`), "version=1\n");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
