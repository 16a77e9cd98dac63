import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { checkSurvival, listSurvival, runningSurvivors, selectSurvivors } from "./survival.ts";
import { inodeKey, kernelDev } from "./rule_codec.ts";
import { cgroup2MountFrom } from "../util/mountinfo.ts";

Deno.test("survival: PID 1 and the named system binaries, deleted ones included", () => {
  const picked = selectSurvivors([
    { pid: 1, exe: "/usr/lib/systemd/systemd" },
    { pid: 1, exe: "/sbin/custom-init" },
    { pid: 200, exe: "/usr/sbin/sshd" },
    { pid: 201, exe: "/usr/bin/bash (deleted)" },
    { pid: 300, exe: "/usr/bin/python3.11" },
    { pid: 301, exe: "/tmp/sshd-lookalike" },
  ]).map((p) => p.exe);
  deepStrictEqual(picked, [
    "/usr/lib/systemd/systemd",
    "/sbin/custom-init",
    "/usr/sbin/sshd",
    "/usr/bin/bash (deleted)",
  ]);
});

Deno.test("cgroup2 mount point from mountinfo (hybrid and pure v2)", () => {
  const hybrid = [
    "35 24 0:30 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755",
    "36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw",
    "37 35 0:32 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu",
  ].join("\n");
  strictEqual(cgroup2MountFrom(hybrid), "/sys/fs/cgroup/unified");
  strictEqual(
    cgroup2MountFrom("30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"),
    "/sys/fs/cgroup",
  );
  strictEqual(cgroup2MountFrom("30 1 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"), null);
});

Deno.test("survival: survivors read from a /proc fixture; list and check against the map", () => {
  const proc = Deno.makeTempDirSync();
  try {
    const bin = `${proc}/bash`;
    Deno.writeTextFileSync(bin, "");
    for (const [pid, target] of [["1", bin], ["42", bin], ["43", `${proc}/gone`]]) {
      Deno.mkdirSync(`${proc}/${pid}`);
      Deno.symlinkSync(target, `${proc}/${pid}/exe`);
    }
    Deno.mkdirSync(`${proc}/self`); // not a pid
    const st = Deno.statSync(bin);
    const dev = kernelDev(st.dev);
    const found = runningSurvivors(proc);
    // pid 43 names "gone", which is not a survivor name (and does not exist)
    deepStrictEqual(found.map((s) => [s.pid, s.ino]).sort(), [[1, st.ino], [42, st.ino]]);
    const map = { maxEntries: 8, keys: () => [inodeKey(dev, st.ino!, 0), inodeKey(dev, 1, 0)] };
    deepStrictEqual(listSurvival(map, found).map((e) => [e.ino, e.exe]), [
      ["1", null],
      [String(st.ino), bin],
    ]);
    const ok = checkSurvival(map, found);
    deepStrictEqual([ok.entries, ok.missing.length, ok.stale.length], [2, 0, 1]);
    const empty = checkSurvival({ maxEntries: 8, keys: () => [] }, found);
    strictEqual(empty.missing.length, 2);
  } finally {
    Deno.removeSync(proc, { recursive: true });
  }
});
