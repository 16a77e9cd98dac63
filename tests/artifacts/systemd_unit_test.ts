/**
 * Tier 1 (artifacts): the unit that `aegisbpf install` writes passes
 * `systemd-analyze verify` with no warning. Skipped, with the reason printed,
 * where systemd-analyze is absent. The unit is installed with --root into a
 * temporary directory; its ExecStart= is pointed at the installed (fake)
 * binary there, since verify checks that the program exists.
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { install, UNIT_PATH } from "../../src/cli/install.ts";

function hasAnalyze(): boolean {
  try {
    new Deno.Command("systemd-analyze", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync();
    return true;
  } catch {
    return false;
  }
}

const HAVE = hasAnalyze();
if (!HAVE) {
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      "systemd_unit_test: skipped: systemd-analyze is not installed (Debian package systemd)\n",
    ),
  );
}

async function verify(unitPath: string): Promise<{ code: number; text: string }> {
  const r = await new Deno.Command("systemd-analyze", {
    args: ["verify", "--man=no", unitPath],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const td = new TextDecoder();
  return { code: r.code, text: (td.decode(r.stdout) + td.decode(r.stderr)).trim() };
}

Deno.test({
  name: "the installed unit passes systemd-analyze verify without a warning",
  ignore: !HAVE,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "aegis-unit-" });
    try {
      const binary = new TextEncoder().encode("#!/bin/sh\nexit 0\n");
      await install({ root, binary });
      const unit = await Deno.readTextFile(`${root}${UNIT_PATH}`);
      match(unit, /^ExecStart=\/usr\/local\/bin\/aegisbpf run$/m);
      const dir = `${root}/verify`;
      await Deno.mkdir(dir);
      const local = unit.replace(
        "ExecStart=/usr/local/bin/aegisbpf",
        `ExecStart=${root}/usr/local/bin/aegisbpf`,
      );
      await Deno.writeTextFile(`${dir}/aegisbpf.service`, local);
      const good = await verify(`${dir}/aegisbpf.service`);
      strictEqual(good.code, 0, good.text);
      strictEqual(good.text, "", "systemd-analyze verify printed warnings");
      // The check can fail: a misspelt setting is reported.
      await Deno.writeTextFile(
        `${dir}/aegisbpf.service`,
        local.replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"),
      );
      const bad = await verify(`${dir}/aegisbpf.service`);
      ok(/NoNewPrivilege/.test(bad.text), `no warning for a bad key: ${bad.text}`);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
