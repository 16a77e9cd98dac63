/**
 * Tier 2 (root): the shim in use is the embedded, hash-checked copy,
 * extracted into a private directory.
 */
import { ok, rejects, strictEqual } from "node:assert/strict";
import { EMBEDDED, extractShim, openEmbeddedShim } from "../../src/assets/mod.ts";
import { sha256Hex } from "../../src/util/bytes.ts";

async function withTempRuntime(fn: (dir: string) => Promise<void>): Promise<void> {
  const base = await Deno.makeTempDir({ prefix: "aegis-rt-" });
  try {
    await fn(`${base}/run`);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
}

Deno.test("the loaded shim is the embedded copy, in a 0700 directory", async () => {
  await withTempRuntime(async (dir) => {
    using shim = await openEmbeddedShim(dir);
    const loaded = shim.loadedPath();
    ok(loaded.startsWith(`${dir}/lib/`), loaded);
    strictEqual(await sha256Hex(await Deno.readFile(loaded)), EMBEDDED.shim.sha256);
    strictEqual(shim.buildId(), EMBEDDED.shim.buildId);
    strictEqual((await Deno.stat(dir)).mode! & 0o777, 0o700);
    strictEqual((await Deno.stat(`${dir}/lib`)).mode! & 0o777, 0o700);
  });
});

Deno.test("a tampered extracted shim is replaced by the embedded bytes", async () => {
  await withTempRuntime(async (dir) => {
    const path = await extractShim(dir);
    await Deno.chmod(path, 0o600);
    await Deno.writeFile(path, new TextEncoder().encode("not a shim"));
    strictEqual(await extractShim(dir), path);
    strictEqual(await sha256Hex(await Deno.readFile(path)), EMBEDDED.shim.sha256);
  });
});

Deno.test("a runtime directory others can write to is refused", async () => {
  await withTempRuntime(async (dir) => {
    await Deno.mkdir(dir, { mode: 0o700 });
    await Deno.chmod(dir, 0o777);
    await rejects(extractShim(dir), /must be owned by uid 0 with mode 0700/);
  });
});

Deno.test("a runtime directory of ours that only we could write (0755, a hostPath) is tightened to 0700", async () => {
  await withTempRuntime(async (dir) => {
    await Deno.mkdir(dir, { mode: 0o700 });
    await Deno.chmod(dir, 0o755);
    await extractShim(dir);
    strictEqual((await Deno.stat(dir)).mode! & 0o777, 0o700);
    // group-writable is still refused: someone else could have planted a file
    await Deno.chmod(dir, 0o775);
    await rejects(extractShim(dir), /must be owned by uid 0 with mode 0700/);
  });
});
