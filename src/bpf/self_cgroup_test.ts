import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { agentCgroupDir, cgroup2PathFrom } from "./self_cgroup.ts";

Deno.test("cgroup2PathFrom: the 0:: line of a hybrid or unified /proc/PID/cgroup", () => {
  strictEqual(
    cgroup2PathFrom("0::/system.slice/aegisbpf.service\n"),
    "/system.slice/aegisbpf.service",
  );
  strictEqual(
    cgroup2PathFrom("12:pids:/x\n1:name=systemd:/y\n0::/user.slice/s-1.scope\n"),
    "/user.slice/s-1.scope",
  );
  strictEqual(cgroup2PathFrom("0::/gone (deleted)\n"), "/gone");
  strictEqual(cgroup2PathFrom("4:memory:/m\n"), null, "v1 only");
  strictEqual(cgroup2PathFrom("0::relative\n"), null);
});

Deno.test("agentCgroupDir: a child of the current cgroup, or the current one when it is the agent's", () => {
  deepStrictEqual(agentCgroupDir("/sys/fs/cgroup", "/"), {
    dir: "/sys/fs/cgroup/aegisbpf.agent",
    parent: "/sys/fs/cgroup",
  });
  deepStrictEqual(agentCgroupDir("/sys/fs/cgroup", "/system.slice/aegisbpf.service"), {
    dir: "/sys/fs/cgroup/system.slice/aegisbpf.service/aegisbpf.agent",
    parent: "/sys/fs/cgroup/system.slice/aegisbpf.service",
  });
  deepStrictEqual(
    agentCgroupDir("/sys/fs/cgroup", "/system.slice/aegisbpf.service/aegisbpf.agent"),
    {
      dir: "/sys/fs/cgroup/system.slice/aegisbpf.service/aegisbpf.agent",
      parent: "/sys/fs/cgroup/system.slice/aegisbpf.service",
    },
  );
});
