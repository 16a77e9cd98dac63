import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { selectSurvivors } from "./survival.ts";
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
