/**
 * Tier 1 (artifacts): the install/uninstall commands as the CLI wires them
 * (src/cli/mod.ts), through the development launcher. The launcher is not the
 * single binary, so plain install refuses (docs/install.md); install --bundle
 * installs the runtime and a bundle, and the installed wrapper runs; uninstall
 * with --root works on a tree laid out by install() and never touches the pins.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { install, launcherScript, MANIFEST_PATH, UNIT_PATH } from "../../src/cli/install.ts";
import { LAUNCHER, ROOT, run } from "../lib/helpers.ts";

Deno.test("install from the development launcher refuses, says why, and writes nothing", async () => {
  const root = await Deno.makeTempDir({ prefix: "aegis-install-cli-" });
  try {
    const r = await run(LAUNCHER, ["install", "--root", root, "--dry-run"]);
    strictEqual(r.code, 1, r.stderr);
    match(r.stderr, /INSTALL_NOT_COMPILED.*deno task compile.*--bundle/s);
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

Deno.test("install --bundle from the launcher: the installed wrapper runs the installed agent", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "aegis-install-bundle-" });
  try {
    const bundle = `${tmp}/aegisbpf.js`;
    const deno = Deno.execPath();
    const b = await run(deno, [
      "bundle",
      "--quiet",
      "--platform",
      "deno",
      `${ROOT}/src/main.ts`,
      "-o",
      bundle,
    ]);
    strictEqual(b.code, 0, b.stderr);
    const root = `${tmp}/root`;
    await Deno.mkdir(root);
    const missing = await run(LAUNCHER, ["install", "--root", root, "--bundle", `${tmp}/nope.js`]);
    strictEqual(missing.code, 1, missing.stderr);
    match(missing.stderr, /--bundle ".*nope\.js" cannot be read/);
    deepStrictEqual([...Deno.readDirSync(root)], []);
    const r = await run(LAUNCHER, ["install", "--root", root, "--bundle", bundle, "--json"]);
    strictEqual(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    ok(j.changes.some((c: { path: string }) => c.path === "/usr/local/lib/aegisbpf/deno"));
    // the runtime installed is the one that ran install, byte for byte
    deepStrictEqual(
      Deno.readFileSync(`${root}/usr/local/lib/aegisbpf/deno`),
      Deno.readFileSync(deno),
    );
    strictEqual(
      Deno.readTextFileSync(`${root}/usr/local/bin/aegisbpf`),
      launcherScript("/usr/local"),
    );
    match(
      Deno.readTextFileSync(`${root}${UNIT_PATH}`),
      /^ExecStart=\/usr\/local\/bin\/aegisbpf run$/m,
    );
    // The wrapper names its files by their installed paths: run the installed
    // runtime on the installed bundle the same way, with the wrapper's flags.
    const wrapper = launcherScript("/usr/local").replaceAll(
      "/usr/local/lib/aegisbpf",
      `${root}/usr/local/lib/aegisbpf`,
    );
    Deno.writeTextFileSync(`${tmp}/wrapper.sh`, wrapper);
    const v = await run("sh", [`${tmp}/wrapper.sh`, "version"]);
    strictEqual(v.code, 0, v.stderr);
    match(v.stdout, /^aegisbpf \d+\.\d+\.\d+/);
    const again = await run(LAUNCHER, ["install", "--root", root, "--bundle", bundle]);
    strictEqual(again.code, 0, again.stderr);
    match(again.stdout, /nothing to change/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
