import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  AEGIS_GUARD_CGROUP_DIR,
  AEGIS_GUARD_CONFIG_DIR,
  AEGIS_GUARD_EXE,
  AEGIS_GUARD_LINK,
  AEGIS_GUARD_LINK_PIN,
  AEGIS_GUARD_PIN_DIR,
  AEGIS_GUARD_PIN_FS,
  AEGIS_GUARD_STATE_DIR,
  AEGIS_TAMPER_UMOUNT,
} from "./abi_gen.ts";
import { kernelDev } from "./rule_codec.ts";
import {
  dirTree,
  GUARD_NAMES,
  guardedInodes,
  hookDev,
  selfObjKey,
  TAMPER_OP_NAMES,
} from "./self_guard.ts";

function tree(): { root: string; paths: Parameters<typeof guardedInodes>[0] } {
  const root = Deno.makeTempDirSync({ prefix: "aegis-guard-" });
  for (const d of ["pins/maps", "pins/links", "state/bundles", "etc/keys", "cg", "run"]) {
    Deno.mkdirSync(`${root}/${d}`, { recursive: true });
  }
  Deno.writeTextFileSync(`${root}/pins/maps/aegis_config`, "");
  Deno.writeTextFileSync(`${root}/pins/links/aegis_file_open`, "");
  Deno.writeTextFileSync(`${root}/state/policy.applied`, "");
  Deno.writeTextFileSync(`${root}/etc/keys/k.pub`, "");
  Deno.writeTextFileSync(`${root}/exe`, "");
  return {
    root,
    paths: {
      pinRoot: `${root}/pins`,
      stateDir: `${root}/state`,
      etcDir: `${root}/etc`,
      keysDir: `${root}/etc/keys`, // inside etcDir: one entry
      runtimeDir: `${root}/run`,
      cgroupDir: `${root}/cg`,
      exe: `${root}/exe`,
    },
  };
}

Deno.test("guardedInodes: directories, link pins, the executable and the bpffs marker; files by their directory", () => {
  const { root, paths } = tree();
  try {
    const got = guardedInodes(paths, "");
    const rel = got.map((g) => [g.path.replace(root, ""), GUARD_NAMES[g.guard]]);
    deepStrictEqual(rel, [
      ["/pins", "pin_dir"],
      ["/pins/maps", "pin_dir"],
      ["/pins/links", "pin_dir"],
      ["/state", "state_dir"],
      ["/state/bundles", "state_dir"],
      ["/run", "run_dir"],
      ["/etc", "config_dir"],
      ["/etc/keys", "config_dir"],
      ["/cg", "cgroup_dir"],
      ["/exe", "exe"],
      ["/pins/links/aegis_file_open", "link_pin"],
      ["/pins", "pin_fs"],
    ]);
    const st = Deno.statSync(`${root}/pins/links/aegis_file_open`);
    const pin = got.find((g) => g.guard === AEGIS_GUARD_LINK_PIN)!;
    strictEqual(pin.ino, st.ino);
    strictEqual(pin.dev, kernelDev(st.dev));
    const fs = got.find((g) => g.guard === AEGIS_GUARD_PIN_FS)!;
    strictEqual(fs.ino, 0, "the bpffs marker is (dev, inode 0)");
    // the guard numbers the BPF side compares with
    deepStrictEqual(
      [AEGIS_GUARD_PIN_DIR, AEGIS_GUARD_STATE_DIR, AEGIS_GUARD_CONFIG_DIR, AEGIS_GUARD_CGROUP_DIR],
      [1, 2, 3, 4],
    );
    strictEqual(GUARD_NAMES[AEGIS_GUARD_EXE], "exe");
    strictEqual(TAMPER_OP_NAMES[AEGIS_TAMPER_UMOUNT], "umount");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("guardedInodes: missing directories are skipped, not guessed", () => {
  const { root, paths } = tree();
  try {
    const got = guardedInodes(
      { ...paths, etcDir: `${root}/nope`, keysDir: `${root}/nope/keys` },
      "",
    );
    strictEqual(got.some((g) => g.guard === AEGIS_GUARD_CONFIG_DIR), false);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("dirTree: breadth first, bounded, no files", () => {
  const { root } = tree();
  try {
    deepStrictEqual(dirTree(`${root}/state`).map((d) => d.replace(root, "")), [
      "/state",
      "/state/bundles",
    ]);
    strictEqual(dirTree(`${root}`, 3).length, 3);
    deepStrictEqual(dirTree(`${root}/absent`), []);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("hookDev: the overlay mount's device on overlayfs, stat()'s elsewhere", () => {
  const { root } = tree();
  try {
    const st = Deno.statSync(`${root}/exe`);
    const over = `36 1 0:27 / / rw - overlay overlay rw\n`;
    strictEqual(hookDev(`${root}/exe`, st, over), 27);
    const ext4 = `36 1 8:1 / / rw - ext4 /dev/sda1 rw\n`;
    strictEqual(hookDev(`${root}/exe`, st, ext4), kernelDev(st.dev));
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("selfObjKey: struct aegis_self_obj_key (id, guard), little endian", () => {
  deepStrictEqual([...selfObjKey(0x01020304, AEGIS_GUARD_LINK)], [4, 3, 2, 1, 9, 0, 0, 0]);
});
