/**
 * The agent's own cgroup on the host's real cgroup v2 hierarchy (root): it
 * goes below the cgroup it was started in, moves intruders out, and a clean
 * stop removes it.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { cgroup2MountFrom } from "../../src/util/mountinfo.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

const CHILD = `
import { enterOwnCgroup, leaveOwnCgroup } from "${ROOT}src/bpf/self_cgroup.ts";
const self = enterOwnCgroup();
const inside = Deno.readTextFileSync(self.path + "/cgroup.procs").split("\\n").filter(Boolean);
const left = leaveOwnCgroup(self);
let removed = false;
try { Deno.statSync(self.path); } catch { removed = true; }
console.log(JSON.stringify({ ...self, id: String(self.id), inside, left, removed,
  after: Deno.readTextFileSync("/proc/self/cgroup") }));
`;

Deno.test("own cgroup: a child of the cgroup the agent starts in; intruders moved out; removed at a clean stop", async () => {
  const mount = cgroup2MountFrom(Deno.readTextFileSync("/proc/self/mountinfo"));
  ok(mount, "the host has a cgroup v2 hierarchy");
  const base = Deno.makeTempDirSync({ prefix: "aegis-cg-" });
  const sup = `${mount}/aegis-test-sup-${Deno.pid}`; // stands for a systemd unit's cgroup
  const sleepers: Deno.ChildProcess[] = [];
  try {
    Deno.mkdirSync(`${sup}/aegisbpf.agent`, { recursive: true });
    const sleep = (cg: string) => {
      const p = new Deno.Command("sh", {
        args: ["-c", `echo $$ > ${cg}/cgroup.procs && exec sleep 60`],
      }).spawn();
      sleepers.push(p);
      return p.pid;
    };
    const neighbour = sleep(sup); // another process of the supervisor's cgroup
    const intruder = sleep(`${sup}/aegisbpf.agent`); // left in the agent's cgroup
    const procs = (cg: string) =>
      Deno.readTextFileSync(`${cg}/cgroup.procs`).split("\n").filter(Boolean).map(Number);
    for (let i = 0; i < 100 && !procs(`${sup}/aegisbpf.agent`).includes(intruder); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    ok(procs(`${sup}/aegisbpf.agent`).includes(intruder), "the intruder is in place");
    Deno.writeTextFileSync(`${base}/child.ts`, CHILD);
    const out = await new Deno.Command("sh", {
      args: [
        "-c",
        `echo $$ > ${sup}/cgroup.procs && exec "$0" run -A --config ${ROOT}deno.json ${base}/child.ts`,
        Deno.execPath(),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    strictEqual(out.code, 0, dec.decode(out.stderr));
    const r = JSON.parse(dec.decode(out.stdout));
    strictEqual(r.path, `${sup}/aegisbpf.agent`, "below the supervisor's cgroup");
    strictEqual(r.parent, sup);
    deepStrictEqual(r.movedOut, [intruder], "the intruder was moved out");
    strictEqual(r.inside.length, 1, `only the agent was inside: ${r.inside}`);
    ok(procs(sup).includes(intruder) && procs(sup).includes(neighbour), "both in the parent");
    strictEqual(r.left, null, "leaving reported no problem");
    ok(r.removed, "the agent's cgroup is gone after a clean stop");
    ok(
      r.after.includes(`0::/aegis-test-sup-${Deno.pid}\n`),
      `back in the supervisor's cgroup: ${r.after}`,
    );
  } finally {
    for (const p of sleepers) {
      try {
        p.kill("SIGKILL");
      } catch { /* gone */ }
      await p.status;
    }
    for (const d of [`${sup}/aegisbpf.agent`, sup]) {
      try {
        Deno.removeSync(d);
      } catch { /* not there */ }
    }
    Deno.removeSync(base, { recursive: true });
  }
});
