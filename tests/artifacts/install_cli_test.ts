/**
 * Tier 1 (artifacts): the install/uninstall commands as the CLI wires them
 * (src/cli/mod.ts), through the development launcher. The launcher is not the
 * single binary, so install refuses (docs/install.md); uninstall with --root
 * works on a tree laid out by install() and never touches the pins.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { install, MANIFEST_PATH, UNIT_PATH } from "../../src/cli/install.ts";
import { LAUNCHER, run } from "../lib/helpers.ts";

Deno.test("install from the development launcher refuses, says why, and writes nothing", async () => {
  const root = await Deno.makeTempDir({ prefix: "aegis-install-cli-" });
  try {
    const r = await run(LAUNCHER, ["install", "--root", root, "--dry-run"]);
    strictEqual(r.code, 1, r.stderr);
    match(r.stderr, /INSTALL_NOT_COMPILED.*deno task compile/s);
    deepStrictEqual([...Deno.readDirSync(root)], []);
    const bad = await run(LAUNCHER, ["install", "--prefix"]);
    strictEqual(bad.code, 2, bad.stderr);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("uninstall --root: dry run lists, plain keeps settings, --purge removes the rest", async () => {
  const root = await Deno.makeTempDir({ prefix: "aegis-install-cli-" });
  try {
    await install({ root, binary: new TextEncoder().encode("#!/bin/sh\n") });
    const dry = await run(LAUNCHER, ["uninstall", "--root", root, "--purge", "--dry-run"]);
    strictEqual(dry.code, 0, dry.stderr);
    match(dry.stdout, /pins not touched/);
    match(dry.stdout, /would remove \/etc\/aegisbpf$/m);
    ok(Deno.statSync(`${root}${UNIT_PATH}`).isFile);
    const plain = await run(LAUNCHER, ["uninstall", "--root", root, "--json"]);
    strictEqual(plain.code, 0, plain.stderr);
    const j = JSON.parse(plain.stdout);
    strictEqual(j.pin_root, null);
    deepStrictEqual(j.removed, []);
    deepStrictEqual(j.files.removed.sort(), [UNIT_PATH, "/usr/local/bin/aegisbpf"]);
    ok(Deno.statSync(`${root}${MANIFEST_PATH}`).isFile);
    const purge = await run(LAUNCHER, ["uninstall", "--root", root, "--purge"]);
    strictEqual(purge.code, 0, purge.stderr);
    deepStrictEqual(
      [...Deno.readDirSync(`${root}/var/lib`)].map((e) => e.name),
      [],
      "state dir left behind",
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
