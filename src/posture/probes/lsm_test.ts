import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { fixtureFs } from "../probe.ts";
import { LSM_LIST_PATH, probeActiveLsms, probeBpfLsmActive } from "./lsm.ts";

Deno.test("lsm probe: bpf listed is supported", async () => {
  const fs = fixtureFs({ [LSM_LIST_PATH]: "lockdown,capability,landlock,bpf\n" });
  assertEquals(await probeBpfLsmActive(fs), { status: "supported", value: true });
});

Deno.test("lsm probe: bpf missing is unsupported, with the boot remedy", async () => {
  const fs = fixtureFs({ [LSM_LIST_PATH]: "lockdown,capability,landlock" });
  const r = await probeBpfLsmActive(fs);
  assertEquals(r.status, "unsupported");
  if (r.status === "unsupported") {
    assertEquals(
      r.reason,
      "bpf is not in the active LSM list (lockdown,capability,landlock); boot with lsm=lockdown,capability,landlock,bpf",
    );
  }
});

Deno.test("lsm probe: no securityfs is unknown, naming the mount", async () => {
  const r = await probeActiveLsms(fixtureFs({}));
  assertEquals(r.status, "unknown");
  if (r.status === "unknown") assertEquals(r.error.includes("mount -t securityfs"), true);
});
