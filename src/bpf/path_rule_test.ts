import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { checkRulePath, PATH_MAX, resolveRulePath } from "./path_rule.ts";
import { kernelDev } from "./rule_codec.ts";

Deno.test("path rules: bad forms are refused with the value and the reason", () => {
  throws(() => checkRulePath("etc/shadow"), /Invalid path "etc\/shadow": must be absolute/);
  throws(() => checkRulePath("./x"), /must be absolute/);
  throws(() => checkRulePath("/etc/\0shadow"), /contains a NUL byte/);
  throws(() => checkRulePath("/" + "a/".repeat(PATH_MAX / 2)), /bytes, the limit is 4095/);
  throws(() => checkRulePath(`/tmp/${"x".repeat(256)}`), /component is longer than 255 bytes/);
  checkRulePath("/etc/shadow");
  checkRulePath(`/tmp/${"é".repeat(127)}`); // 254 bytes: fine
});

Deno.test("path rules: symlinks resolve to the target's inode; missing files are unresolved", () => {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-path-" });
  try {
    Deno.writeTextFileSync(`${dir}/target`, "x");
    Deno.symlinkSync(`${dir}/target`, `${dir}/link`);
    const st = Deno.statSync(`${dir}/target`);
    const r = resolveRulePath(`${dir}/link`);
    strictEqual(r.status, "resolved");
    if (r.status === "resolved") {
      strictEqual(r.canonical, Deno.realPathSync(`${dir}/target`));
      deepStrictEqual([r.dev, r.ino], [kernelDev(st.dev), st.ino]);
    }
    deepStrictEqual(resolveRulePath(`${dir}/missing`), {
      status: "unresolved",
      path: `${dir}/missing`,
      reason: "does not exist (yet)",
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("kernelDev: glibc st_dev encoding to the kernel's major << 20 | minor", () => {
  strictEqual(kernelDev(0x0801), (8 << 20) | 1); // sda1
  strictEqual(kernelDev(0x00fe00 + 0x12), (0xfe << 20) | 0x12);
  strictEqual(kernelDev(0x10300 | 0x5), (0x103 << 20) | 0x5); // major > 255
  strictEqual(kernelDev(0x100000 | 0x0800), (8 << 20) | 0x100); // minor > 255
});
