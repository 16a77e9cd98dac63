/**
 * VM tier: pinned maps and links. Enforcement outlives the engine that
 * loaded it, a new engine re-adopts the pins with no instant left without
 * the rules, pins of another layout are refused, and uninstall removes
 * everything (and with it the enforcement).
 */
import { ok, strictEqual, throws } from "node:assert/strict";
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import {
  AEGIS_CFG_LAYOUT,
  AEGIS_POL_FILE_RULES,
  AEGIS_RT_INODE,
  AEGIS_RULE_DENY,
} from "../../src/bpf/abi_gen.ts";
import { Engine, type EngineOptions, uninstallPins } from "../../src/bpf/engine.ts";
import { BpfMap } from "../../src/bpf/map.ts";
import { inodeKey, kernelDev, policyValue, ruleValue, u32Key } from "../../src/bpf/rule_codec.ts";
import type { Shim } from "../../src/native/mod.ts";
import { eventually, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

/** A pinned map opened by path (the way the CLI edits rules without the daemon). */
function pinnedMap(shim: Shim, root: string, name: string): BpfMap {
  return new BpfMap(shim, name, shim.getPinned(`${root}/maps/${name}`));
}

function setup(): { root: string; dir: string; denied: string; opts: EngineOptions } {
  const root = `/sys/fs/bpf/aegis-test-${crypto.randomUUID().slice(0, 8)}`;
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-pin-" });
  Deno.writeTextFileSync(`${dir}/denied`, "secret");
  const opts: EngineOptions = {
    pinRoot: root,
    fileHook: "file",
    select: (s) => s === "lsm/file_open",
  };
  return { root, dir, denied: `${dir}/denied`, opts };
}

function denyWithPins(shim: Shim, root: string, path: string): void {
  const st = Deno.statSync(path);
  const deny = pinnedMap(shim, root, "aegis_deny_inode");
  const policy = pinnedMap(shim, root, "aegis_policy");
  try {
    policy.update(u32Key(0), policyValue(AEGIS_POL_FILE_RULES));
    deny.update(
      inodeKey(kernelDev(st.dev), st.ino!, 0),
      ruleValue(7, AEGIS_RULE_DENY, AEGIS_RT_INODE),
    );
  } finally {
    shim.closeFd(deny.fd);
    shim.closeFd(policy.fd);
  }
}

Deno.test({
  name:
    "pinned links keep enforcing after the engine closes; a new engine re-adopts; uninstall ends it",
  ignore: !LSM_ON,
  fn: async () => {
    const { root, dir, denied, opts } = setup();
    using shim = await openEmbeddedShim();
    const bytes = await bpfObjectBytes();
    try {
      const first = Engine.start(shim, bytes, opts);
      strictEqual(first.readopted, false);
      denyWithPins(shim, root, denied);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "enforced by the first engine");
      first.close();
      strictEqual(tryOpen(denied), "EPERM/EACCES", "still enforced with no engine running");

      // a concurrent opener hammers the file while engines restart three times
      const hammer = new Deno.Command("/usr/bin/python3", {
        args: [
          "-c",
          `
import os, sys, time
allowed = denied = 0
end = time.time() + 60
while time.time() < end and not os.path.exists(sys.argv[2]):
    try:
        os.close(os.open(sys.argv[1], os.O_RDONLY)); allowed += 1
    except PermissionError:
        denied += 1
print(allowed, denied)
`,
          denied,
          `${dir}/stop`,
        ],
        stdout: "piped",
      }).spawn();
      // python starts slowly under TCG: wait for its first attempt
      for (let t = 0; t < 300; t++) {
        try {
          Deno.statSync(`${dir}/started`);
          break;
        } catch {
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const before = Date.now();
      for (let i = 0; i < 3; i++) {
        const again = Engine.start(shim, bytes, opts);
        strictEqual(again.readopted, true);
        again.close();
      }
      // keep the opener going a little past the last restart
      await new Promise((r) => setTimeout(r, Math.max(200, 1000 - (Date.now() - before))));
      Deno.writeTextFileSync(`${dir}/stop`, "");
      const [allowed, deniedCount] = new TextDecoder().decode((await hammer.output()).stdout).trim()
        .split(" ").map(Number);
      strictEqual(allowed, 0, `opens allowed during re-adoption (denied ${deniedCount})`);
      ok(deniedCount > 10, `the opener ran during the restarts (${deniedCount} denials)`);

      const removed = uninstallPins(root);
      ok(removed.includes(`${root}/links/aegis_file_open`), removed.join(" "));
      ok(removed.includes(`${root}/maps/aegis_deny_inode`), removed.join(" "));
      // the kernel frees an unpinned link from a work queue: detach follows shortly
      strictEqual(await eventually(() => tryOpen(denied)), "ok", "allowed once the pins are gone");
    } finally {
      try {
        uninstallPins(root);
      } catch { /* already gone */ }
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "pins of another layout are refused with a clear error and left in place",
  ignore: !LSM_ON,
  fn: async () => {
    const { root, dir, opts } = setup();
    using shim = await openEmbeddedShim();
    const bytes = await bpfObjectBytes();
    try {
      Engine.start(shim, bytes, opts).close();
      const cfg = pinnedMap(shim, root, "aegis_config");
      cfg.setU64(AEGIS_CFG_LAYOUT, 0xdeadbeefn);
      shim.closeFd(cfg.fd);
      throws(() => Engine.start(shim, bytes, opts), /another map layout .*"aegisbpf uninstall"/);
      ok(Deno.statSync(`${root}/links/aegis_file_open`).isFile);
    } finally {
      uninstallPins(root);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "without bpf in lsm= the engine still loads and pins (the gate, not the loader, refuses)",
  ignore: LSM_ON,
  fn: async () => {
    const { root, dir, opts } = setup();
    using shim = await openEmbeddedShim();
    try {
      const e = Engine.start(shim, await bpfObjectBytes(), opts);
      strictEqual(e.attachedSections().join(), "lsm/file_open");
      e.close();
    } finally {
      uninstallPins(root);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
