import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import { AegisError } from "../errors.ts";
import {
  checkPathOption,
  ENV_PATH,
  install,
  launcherScript,
  LIB_FILES,
  MANIFEST_PATH,
  refusedWhileArmed,
  uninstallFiles,
  UNIT_PATH,
  unitFor,
} from "./install.ts";
import { LAUNCHER_PERMISSIONS, UNIT_TEMPLATE } from "./install_unit.ts";

const BIN = new TextEncoder().encode("#!/bin/sh\necho fake aegisbpf\n");
const BIN2 = new TextEncoder().encode("#!/bin/sh\necho fake aegisbpf v2\n");

async function withRoot(f: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "aegis-install-" });
  try {
    await f(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function exists(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

function mode(p: string): string {
  return (Deno.lstatSync(p).mode! & 0o7777).toString(8).padStart(4, "0");
}

/** Every path below root with its mode and content hash, for "nothing changed" checks. */
function snapshot(root: string): string[] {
  const outList: string[] = [];
  const walk = (d: string) => {
    for (const e of Deno.readDirSync(d)) {
      const p = `${d}/${e.name}`;
      const st = Deno.lstatSync(p);
      outList.push(`${p.slice(root.length)} ${st.mode} ${st.size} ${st.mtime?.getTime()}`);
      if (e.isDirectory) walk(p);
    }
  };
  walk(root);
  return outList.sort();
}

async function rejectsCode(p: Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  await rejects(p, (e) => {
    ok(e instanceof AegisError, String(e));
    strictEqual(e.code, code, e.message);
    if (re) match(e.message, re);
    return true;
  });
}

Deno.test("the embedded unit is packaging/systemd/aegisbpf.service, byte for byte", async () => {
  const file = await Deno.readTextFile(
    new URL("../../packaging/systemd/aegisbpf.service", import.meta.url),
  );
  strictEqual(UNIT_TEMPLATE, file);
  match(unitFor("/usr/local"), /^ExecStart=\/usr\/local\/bin\/aegisbpf run$/m);
  match(unitFor("/"), /^ExecStart=\/bin\/aegisbpf run$/m);
});

Deno.test("install lays out binary, unit, /etc/aegisbpf and /var/lib/aegisbpf with modes", async () => {
  await withRoot(async (root) => {
    const r = await install({ root, binary: BIN });
    strictEqual(r.dry_run, false);
    const bin = `${root}/usr/local/bin/aegisbpf`;
    deepStrictEqual(await Deno.readFile(bin), BIN);
    strictEqual(mode(bin), "0755");
    strictEqual(mode(`${root}${UNIT_PATH}`), "0644");
    strictEqual(await Deno.readTextFile(`${root}${UNIT_PATH}`), unitFor("/usr/local"));
    strictEqual(mode(`${root}/etc/aegisbpf`), "0755");
    strictEqual(mode(`${root}/etc/aegisbpf/keys`), "0700");
    strictEqual(mode(`${root}/etc/aegisbpf/policy`), "0700");
    strictEqual(mode(`${root}${ENV_PATH}`), "0600");
    strictEqual(mode(`${root}/var/lib/aegisbpf`), "0700");
    strictEqual(mode(`${root}${MANIFEST_PATH}`), "0600");
    const st = Deno.statSync(`${root}/etc/aegisbpf/keys`);
    strictEqual(st.uid, Deno.statSync(root).uid);
    const m = JSON.parse(await Deno.readTextFile(`${root}${MANIFEST_PATH}`));
    strictEqual(m.layout_version, 1);
    deepStrictEqual(Object.keys(m.files).sort(), [
      ENV_PATH,
      UNIT_PATH,
      "/usr/local/bin/aegisbpf",
    ]);
    ok(r.changes.some((c) => c.action === "write" && c.path === "/usr/local/bin/aegisbpf"));
  });
});

Deno.test("a second install changes nothing and reports no change", async () => {
  await withRoot(async (root) => {
    await install({ root, binary: BIN });
    const before = snapshot(root);
    const r = await install({ root, binary: BIN });
    deepStrictEqual(r.changes, []);
    deepStrictEqual(r.kept, [ENV_PATH]);
    deepStrictEqual(snapshot(root), before);
  });
});

Deno.test("--dry-run lists every change and writes nothing", async () => {
  await withRoot(async (root) => {
    const r = await install({ root, binary: BIN, dryRun: true });
    deepStrictEqual(snapshot(root), []);
    strictEqual(r.dry_run, true);
    const paths = r.changes.map((c) => c.path).sort();
    for (
      const p of [
        "/usr/local/bin",
        "/usr/local/bin/aegisbpf",
        UNIT_PATH,
        ENV_PATH,
        "/etc/aegisbpf/keys",
        "/var/lib/aegisbpf",
        MANIFEST_PATH,
      ]
    ) ok(paths.includes(p), `${p} missing from ${paths.join(", ")}`);
    // and a dry run over an installed tree with a new binary names the replacement only
    await install({ root, binary: BIN });
    const before = snapshot(root);
    const r2 = await install({ root, binary: BIN2, dryRun: true });
    deepStrictEqual(r2.changes.map((c) => `${c.action} ${c.path}`), [
      "replace /usr/local/bin/aegisbpf",
      `write ${MANIFEST_PATH}`,
    ]);
    deepStrictEqual(snapshot(root), before);
  });
});

Deno.test("upgrade replaces the binary it installed; settings the operator edited are kept", async () => {
  await withRoot(async (root) => {
    await install({ root, binary: BIN });
    await Deno.writeTextFile(`${root}${ENV_PATH}`, "AEGIS_HTTP_LISTEN=off\n");
    const r = await install({ root, binary: BIN2 });
    deepStrictEqual(await Deno.readFile(`${root}/usr/local/bin/aegisbpf`), BIN2);
    strictEqual(await Deno.readTextFile(`${root}${ENV_PATH}`), "AEGIS_HTTP_LISTEN=off\n");
    deepStrictEqual(r.kept, [ENV_PATH]);
  });
});

Deno.test("a file install did not write is not overwritten without --force; nothing changes", async () => {
  await withRoot(async (root) => {
    await Deno.mkdir(`${root}/etc/systemd/system`, { recursive: true });
    await Deno.writeTextFile(`${root}${UNIT_PATH}`, "[Service]\nExecStart=/other\n");
    await rejectsCode(
      install({ root, binary: BIN }),
      "INSTALL_REFUSED",
      /aegisbpf\.service exists with other content.*--force/,
    );
    deepStrictEqual(snapshot(root).map((l) => l.split(" ")[0]), [
      "/etc",
      "/etc/systemd",
      "/etc/systemd/system",
      UNIT_PATH,
    ]);
    // an installed binary changed by someone else is not ours any more either
    await Deno.remove(`${root}${UNIT_PATH}`);
    await install({ root, binary: BIN });
    await Deno.writeFile(`${root}/usr/local/bin/aegisbpf`, BIN2);
    await rejectsCode(
      install({ root, binary: BIN }),
      "INSTALL_REFUSED",
      /usr\/local\/bin\/aegisbpf/,
    );
    const r = await install({ root, binary: BIN, force: true });
    ok(r.changes.some((c) => c.detail === "replace (--force)"));
    deepStrictEqual(await Deno.readFile(`${root}/usr/local/bin/aegisbpf`), BIN);
  });
});

Deno.test("symbolic links below the root are refused, even with --force", async () => {
  await withRoot(async (root) => {
    const elsewhere = await Deno.makeTempDir({ prefix: "aegis-install-target-" });
    try {
      await Deno.symlink(elsewhere, `${root}/etc`);
      await rejectsCode(
        install({ root, binary: BIN, force: true }),
        "INSTALL_REFUSED",
        /\/etc is a symbolic link/,
      );
      deepStrictEqual([...Deno.readDirSync(elsewhere)], []);
      await Deno.remove(`${root}/etc`);
      await install({ root, binary: BIN });
      await Deno.remove(`${root}/usr/local/bin/aegisbpf`);
      await Deno.symlink(`${elsewhere}/victim`, `${root}/usr/local/bin/aegisbpf`);
      await rejectsCode(install({ root, binary: BIN, force: true }), "INSTALL_REFUSED", /symbolic/);
      deepStrictEqual([...Deno.readDirSync(elsewhere)], []);
    } finally {
      await Deno.remove(elsewhere, { recursive: true });
    }
  });
});

Deno.test("a directory with the wrong mode is fixed; a non-directory in its place is refused", async () => {
  await withRoot(async (root) => {
    await install({ root, binary: BIN });
    Deno.chmodSync(`${root}/etc/aegisbpf/keys`, 0o755);
    const r = await install({ root, binary: BIN });
    deepStrictEqual(r.changes.map((c) => `${c.action} ${c.path} ${c.detail}`), [
      "chmod /etc/aegisbpf/keys mode 0755 -> 0700",
    ]);
    strictEqual(mode(`${root}/etc/aegisbpf/keys`), "0700");
    await Deno.remove(`${root}/etc/aegisbpf/policy`);
    await Deno.writeTextFile(`${root}/etc/aegisbpf/policy`, "x");
    await rejectsCode(
      install({ root, binary: BIN }),
      "INSTALL_REFUSED",
      /policy exists and is not/,
    );
  });
});

Deno.test("hostile --prefix and --root values are refused with the option named", async () => {
  for (
    const bad of [
      "relative/path",
      "/usr/../etc",
      "/usr/./local",
      "/usr/local\nExecStartPre=/bin/sh",
      "/opt/a b",
      "/opt/$x",
      "",
      "__proto__",
      "/" + "a".repeat(300),
    ]
  ) {
    let threw = false;
    try {
      checkPathOption("--prefix", bad);
    } catch (e) {
      threw = true;
      ok(e instanceof AegisError);
      strictEqual(e.code, "INSTALL_BAD_PATH");
      match(e.message, /--prefix/);
    }
    ok(threw, JSON.stringify(bad));
  }
  strictEqual(checkPathOption("--prefix", "/opt//aegis/"), "/opt/aegis");
  await withRoot(async (root) => {
    await rejectsCode(
      install({ root, prefix: "/usr/local\nX=1", binary: BIN }),
      "INSTALL_BAD_PATH",
      /--prefix/,
    );
    await rejectsCode(install({ root: `${root}/missing`, binary: BIN }), "INSTALL_BAD_PATH");
    deepStrictEqual(snapshot(root), []);
  });
});

Deno.test("a corrupt or newer install record is refused, naming the file", async () => {
  await withRoot(async (root) => {
    await install({ root, binary: BIN });
    await Deno.writeTextFile(`${root}${MANIFEST_PATH}`, '{"constructor": 1}');
    await rejectsCode(install({ root, binary: BIN2 }), "INSTALL_MANIFEST_BAD", /install\.json/);
    await Deno.writeTextFile(
      `${root}${MANIFEST_PATH}`,
      JSON.stringify({ layout_version: 99, prefix: "/usr/local", files: {} }),
    );
    await rejectsCode(install({ root, binary: BIN2 }), "INSTALL_LAYOUT_NEWER", /99/);
    deepStrictEqual(await Deno.readFile(`${root}/usr/local/bin/aegisbpf`), BIN);
  });
});

Deno.test("uninstall keeps settings and state; --purge removes everything install made", async () => {
  await withRoot(async (root) => {
    await install({ root, binary: BIN, prefix: "/opt/aegis" });
    await Deno.writeTextFile(`${root}/etc/aegisbpf/keys/ops.pub`, "k");
    const dry = await uninstallFiles({ root, purge: true, dryRun: true });
    ok(dry.removed.includes("/etc/aegisbpf"));
    ok(Deno.statSync(`${root}/etc/aegisbpf/keys/ops.pub`).isFile);
    const r = await uninstallFiles({ root });
    deepStrictEqual(r.removed.sort(), [
      "/etc/systemd/system/aegisbpf.service",
      "/opt/aegis/bin/aegisbpf",
    ]);
    ok(Deno.statSync(`${root}${ENV_PATH}`).isFile);
    ok(Deno.statSync(`${root}/etc/aegisbpf/keys/ops.pub`).isFile);
    // reinstall, then purge
    await install({ root, binary: BIN, prefix: "/opt/aegis" });
    const p = await uninstallFiles({ root, purge: true });
    ok(p.removed.includes("/var/lib/aegisbpf"));
    for (
      const gone of ["/etc/aegisbpf", "/var/lib/aegisbpf", UNIT_PATH, "/opt/aegis/bin/aegisbpf"]
    ) {
      strictEqual(exists(`${root}${gone}`), false, gone);
    }
  });
});

Deno.test("a second install under another --prefix is refused until the first is uninstalled", async () => {
  await withRoot(async (root) => {
    await install({ root, binary: BIN });
    const before = snapshot(root);
    await rejectsCode(
      install({ root, binary: BIN, prefix: "/opt/aegis" }),
      "INSTALL_REFUSED",
      /already installed with --prefix \/usr\/local/,
    );
    deepStrictEqual(snapshot(root), before);
    await uninstallFiles({ root });
    await install({ root, binary: BIN, prefix: "/opt/aegis" });
    match(
      await Deno.readTextFile(`${root}${UNIT_PATH}`),
      /^ExecStart=\/opt\/aegis\/bin\/aegisbpf run$/m,
    );
  });
});

Deno.test("uninstall removes only paths install writes, whatever install.json lists", async () => {
  await withRoot(async (root) => {
    await install({ root, binary: BIN });
    await Deno.mkdir(`${root}/etc/ssh`, { recursive: true });
    await Deno.writeTextFile(`${root}/etc/ssh/sshd_config`, "x");
    const m = JSON.parse(await Deno.readTextFile(`${root}${MANIFEST_PATH}`));
    m.files["/etc/ssh/sshd_config"] =
      "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
    await Deno.writeTextFile(`${root}${MANIFEST_PATH}`, JSON.stringify(m));
    const r = await uninstallFiles({ root, purge: true });
    ok(exists(`${root}/etc/ssh/sshd_config`));
    ok(r.kept.some((k) => k.startsWith("/etc/ssh/sshd_config")), r.kept.join(", "));
    ok(!exists(`${root}/usr/local/bin/aegisbpf`));
  });
});

Deno.test("the --bundle wrapper carries build/permissions.flags, exactly", async () => {
  const flags = (await Deno.readTextFile(new URL("../../build/permissions.flags", import.meta.url)))
    .split("\n").map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
  deepStrictEqual([...LAUNCHER_PERMISSIONS], flags);
  const w = launcherScript("/opt/aegis");
  match(w, /^#!\/bin\/sh\n/);
  const exec = w.split("\n").find((l) => l.startsWith("exec "));
  strictEqual(
    exec,
    `exec /opt/aegis/lib/aegisbpf/deno run --quiet --no-prompt --cached-only ${
      flags.join(" ")
    } /opt/aegis/lib/aegisbpf/aegisbpf.js "$@"`,
  );
  match(
    launcherScript("/"),
    /^exec \/lib\/aegisbpf\/deno run .* \/lib\/aegisbpf\/aegisbpf\.js "\$@"$/m,
  );
});

Deno.test("install --bundle: runtime, bundle and wrapper; the same unit; uninstall removes them", async () => {
  const runtime = new TextEncoder().encode("fake deno runtime");
  const bundle = new TextEncoder().encode("console.log('agent');\n");
  await withRoot(async (root) => {
    const r = await install({ root, launcher: { runtime, bundle } });
    const lib = `${root}/usr/local/lib/aegisbpf`;
    deepStrictEqual(await Deno.readFile(`${lib}/deno`), runtime);
    deepStrictEqual(await Deno.readFile(`${lib}/aegisbpf.js`), bundle);
    strictEqual(mode(`${lib}/deno`), "0755");
    strictEqual(mode(`${lib}/aegisbpf.js`), "0644");
    strictEqual(mode(lib), "0755");
    const bin = `${root}/usr/local/bin/aegisbpf`;
    strictEqual(await Deno.readTextFile(bin), launcherScript("/usr/local"));
    strictEqual(mode(bin), "0755");
    // the unit, the settings and the directories are those of the binary install
    strictEqual(await Deno.readTextFile(`${root}${UNIT_PATH}`), unitFor("/usr/local"));
    strictEqual(mode(`${root}/etc/aegisbpf/keys`), "0700");
    strictEqual(mode(`${root}/var/lib/aegisbpf`), "0700");
    ok(r.changes.some((c) => c.action === "write" && c.path === "/usr/local/lib/aegisbpf/deno"));
    const m = JSON.parse(await Deno.readTextFile(`${root}${MANIFEST_PATH}`));
    deepStrictEqual(
      Object.keys(m.files).sort(),
      [
        ENV_PATH,
        UNIT_PATH,
        "/usr/local/bin/aegisbpf",
        ...LIB_FILES.map((f) => `/usr/local/lib/aegisbpf/${f}`),
      ].sort(),
    );
    // idempotent
    const again = await install({ root, launcher: { runtime, bundle } });
    deepStrictEqual(again.changes, []);
    // a new bundle replaces only the bundle
    const r2 = await install({
      root,
      launcher: { runtime, bundle: new TextEncoder().encode("// v2\n") },
      dryRun: true,
    });
    deepStrictEqual(r2.changes.map((c) => `${c.action} ${c.path}`), [
      "replace /usr/local/lib/aegisbpf/aegisbpf.js",
      `write ${MANIFEST_PATH}`,
    ]);
    const u = await uninstallFiles({ root });
    deepStrictEqual(
      u.removed.sort(),
      [
        UNIT_PATH,
        "/usr/local/bin/aegisbpf",
        ...LIB_FILES.map((f) => `/usr/local/lib/aegisbpf/${f}`),
      ].sort(),
    );
    ok(!exists(lib), "PREFIX/lib/aegisbpf left behind");
    ok(exists(`${root}/var/lib/aegisbpf`));
  });
});

Deno.test("install: a write refused to root names the armed self-protection and the way out", () => {
  const denied = new Deno.errors.PermissionDenied("Operation not permitted (os error 1)");
  const e = refusedWhileArmed(denied, 0);
  ok(e instanceof AegisError);
  strictEqual(e.code, "INSTALL_WRITE_REFUSED");
  match(e.message, /Operation not permitted.*self-protection.*systemctl stop aegisbpf/);
  // not root: an ordinary permission problem, passed on as it was
  strictEqual(refusedWhileArmed(denied, 1000), denied);
  const other = new Error("disk full");
  strictEqual(refusedWhileArmed(other, 0), other);
});
