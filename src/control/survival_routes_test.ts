/** GET /survival and /survival/verify over a fake allowlist map. */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { inodeKey } from "../bpf/rule_codec.ts";
import { createSurvivalRoutes } from "./survival_routes.ts";
import { createStatsRoutes } from "./stats_routes.ts";
import { BlockTally } from "../metrics/block_tally.ts";
import type { KernelRecord } from "../events/decode.ts";

const map = { maxEntries: 1024, keys: () => [inodeKey(2049, 7, 0), inodeKey(2049, 5, 0)] };
const survivors = () => [
  { pid: 1, exe: "/usr/lib/systemd/systemd", dev: 2049, ino: 5 },
  { pid: 300, exe: "/usr/sbin/sshd", dev: 2049, ino: 9 },
];

Deno.test("GET /survival lists entries named by the survivors; /verify names the missing", async () => {
  const app = createSurvivalRoutes({ map: () => map, survivors });
  const list = await (await app.request("/")).json();
  deepStrictEqual(list, {
    capacity: 1024,
    entries: [
      { dev: 2049, device: "0:2049", ino: "5", exe: "/usr/lib/systemd/systemd" },
      { dev: 2049, device: "0:2049", ino: "7", exe: null },
    ],
  });
  const v = await (await app.request("/verify")).json();
  strictEqual(v.entries, 2);
  deepStrictEqual(v.missing, [{ pid: 300, exe: "/usr/sbin/sshd", dev: 2049, ino: "9" }]);
  deepStrictEqual(v.stale.map((e: { ino: string }) => e.ino), ["7"]);
});

Deno.test("GET /stats/blocks: the tally, rules and cgroups named", async () => {
  const tally = new BlockTally(0);
  tally.observe({ kind: "net_block", ruleId: 4, cgid: 10, action: 1 } as KernelRecord);
  const app = createStatsRoutes({
    tally,
    ruleName: (id) => `rule #${id}`,
    cgroupPath: (cgid) => (cgid === "10" ? "/app.slice" : null),
  });
  const b = await (await app.request("/blocks")).json();
  deepStrictEqual(b.by_rule, [{ rule_id: 4, rule: "rule #4", blocks: 1, audits: 0 }]);
  deepStrictEqual(b.by_cgroup, [{ cgid: "10", cgroup_path: "/app.slice", blocks: 1, audits: 0 }]);
});
