/**
 * VM tier: atomic policy apply over the rule generations. A rule in both
 * the old and the new policy is never absent while policies switch (a
 * concurrent opener never gets through), a rule only in the new one is
 * enforced from the switch on, and a failed apply (the rule map too small)
 * leaves the previous policy enforcing with nothing of the new one behind.
 */
import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import {
  AEGIS_POL_FILE_RULES,
  AEGIS_RT_INODE,
  AEGIS_RULE_DENY,
  type MapName,
} from "../../src/bpf/abi_gen.ts";
import { Engine } from "../../src/bpf/engine.ts";
import { inodeKey, kernelDev, ruleValue } from "../../src/bpf/rule_codec.ts";
import { applyCompiled, liveGeneration } from "../../src/policy/generations.ts";
import type { CompiledPolicy } from "../../src/policy/compile.ts";
import { tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

function denyPaths(paths: string[]): CompiledPolicy {
  return {
    flags: AEGIS_POL_FILE_RULES,
    entries: paths.map((p, i) => {
      const st = Deno.statSync(p);
      return {
        map: "aegis_deny_inode",
        key: (gen: number) => inodeKey(kernelDev(st.dev), st.ino!, gen),
        value: ruleValue(i + 1, AEGIS_RULE_DENY, AEGIS_RT_INODE),
      };
    }),
  };
}

Deno.test({
  name:
    "policy apply: no gap for kept rules, new rules from the switch on, a failed apply changes nothing",
  ignore: !LSM_ON,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-apply-" });
    const f = (n: string) => `${dir}/${n}`;
    for (const n of ["f1", "f2", "f3", "x1", "x2", "x3", "x4", "x5"]) {
      Deno.writeTextFileSync(f(n), n);
    }
    using shim = await openEmbeddedShim();
    using engine = Engine.start(shim, await bpfObjectBytes(), {
      pinRoot: null,
      fileHook: "file",
      select: (s) => s === "lsm/file_open",
      mapSizes: { aegis_deny_inode: 8 }, // both generations must fit: deliberately small
    });
    const maps = (name: MapName) => engine.obj.map(name);
    try {
      const A = denyPaths([f("f1"), f("f2")]);
      const B = denyPaths([f("f1"), f("f3")]);
      applyCompiled(maps, A);
      deepStrictEqual([tryOpen(f("f1")), tryOpen(f("f2")), tryOpen(f("f3"))], [
        "EPERM/EACCES",
        "EPERM/EACCES",
        "ok",
      ]);

      // f1 is in both policies: hammer it while switching 20 times
      const hammer = new Deno.Command("/usr/bin/python3", {
        args: [
          "-c",
          `
import os, sys
allowed = denied = 0
while not os.path.exists(sys.argv[2]):
    try:
        os.close(os.open(sys.argv[1], os.O_RDONLY)); allowed += 1
    except PermissionError:
        denied += 1
    if denied + allowed == 1:
        open(sys.argv[3], "w").close()
print(allowed, denied)
`,
          f("f1"),
          f("stop"),
          f("started"),
        ],
        stdout: "piped",
      }).spawn();
      for (let t = 0; t < 300 && tryOpen(f("started")) !== "ok"; t++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      for (let i = 0; i < 20; i++) applyCompiled(maps, i % 2 === 0 ? B : A);
      Deno.writeTextFileSync(f("stop"), "");
      const [allowed, denied] = new TextDecoder().decode((await hammer.output()).stdout).trim()
        .split(" ").map(Number);
      strictEqual(allowed, 0, `f1 opened during the switches (denied ${denied})`);
      ok(denied > 0);
      // after an even number of switches starting from B: the last applied is A
      deepStrictEqual([tryOpen(f("f2")), tryOpen(f("f3"))], ["EPERM/EACCES", "ok"]);
      applyCompiled(maps, B);
      deepStrictEqual([tryOpen(f("f1")), tryOpen(f("f2")), tryOpen(f("f3"))], [
        "EPERM/EACCES",
        "ok",
        "EPERM/EACCES",
      ]);
      const genBefore = liveGeneration(maps);

      // 7 rules + the live 2 do not fit in 8 entries: the apply must fail cleanly
      const C = denyPaths([f("f2"), f("x1"), f("x2"), f("x3"), f("x4"), f("x5"), f("f3")]);
      throws(() => applyCompiled(maps, C), /previous policy is still enforcing/);
      strictEqual(liveGeneration(maps), genBefore, "generation unchanged");
      deepStrictEqual([tryOpen(f("f1")), tryOpen(f("f2")), tryOpen(f("f3"))], [
        "EPERM/EACCES",
        "ok",
        "EPERM/EACCES",
      ], "B still enforcing");
      strictEqual(maps("aegis_deny_inode").keys().length, 2, "nothing of C left behind");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
