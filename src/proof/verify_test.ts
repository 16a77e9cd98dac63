import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
  rejects,
  throws,
} from "node:assert/strict";
import type { PathProbe, ProbeOpenResult } from "../native/probe.ts";
import { type FileRuleTarget, RuleVerifier } from "./verify.ts";

const REG = 0o100000, DIR = 0o040000, FIFO = 0o010000;

/** A fake kernel: per path what the probe sees. */
function fake(
  world: Record<string, Partial<PathProbe>>,
  targets: FileRuleTarget[],
  opts: { limit?: number; cgroupErrno?: number; held?: boolean | null } = {},
) {
  const asked: string[][] = [];
  const v = new RuleVerifier({
    targets: () => targets,
    probe: (paths) => {
      asked.push(paths);
      const res: ProbeOpenResult = {
        cgroupErrno: opts.cgroupErrno ?? 0,
        done: paths.length,
        timedOut: false,
        paths: paths.map((p) => ({
          lookupErrno: 0,
          openErrno: 1,
          dev: 1,
          ino: 2n,
          type: REG,
          ...world[p],
        })),
      };
      return Promise.resolve(res);
    },
    heldNow: () =>
      opts.held === null || opts.held === undefined
        ? null
        : { held: opts.held, identity: "dev 7:0 inode 12" },
    limit: opts.limit,
  });
  return { v, asked };
}

Deno.test("verify: every rule denied leaves nothing unenforced", async () => {
  const { v } = fake({}, [{ ruleId: 3, path: "/a" }, { ruleId: 4, path: "/b" }]);
  const r = await v.round();
  assertEquals(r, {
    tried: 2,
    fresh: 2,
    denied: 2,
    unenforced: 0,
    skipped: 0,
    inconclusive: 0,
    rules: 2,
  });
  assertEquals(v.unenforced, []);
  assertEquals(v.problem(), null);
});

Deno.test("verify: a path that opens is unenforced with why (replaced file vs held rule)", async () => {
  const t = [{ ruleId: 7, path: "/srv/secret" }];
  const replaced = fake({ "/srv/secret": { openErrno: 0 } }, t, { held: false });
  await replaced.v.round();
  const [u] = replaced.v.unenforced;
  assertEquals([u.rule_id, u.surface, u.target], [7, "file", "/srv/secret"]);
  assertMatch(u.reason, /holds no rule for the file the path names now \(dev 7:0 inode 12\)/);
  assertMatch(
    replaced.v.problem()!,
    /^rule verification: 1 rule\(s\) not denied by the kernel: rule 7/,
  );

  const held = fake({ "/srv/secret": { openErrno: 0, type: DIR } }, t, { held: true });
  await held.v.round();
  assertMatch(held.v.unenforced[0].reason, /opened the directory: the kernel holds a rule for it/);
});

Deno.test("verify: missing paths and devices/FIFOs are skipped, never opened or listed", async () => {
  const { v } = fake(
    { "/gone": { lookupErrno: 2, openErrno: null }, "/fifo": { type: FIFO, openErrno: null } },
    [{ ruleId: 1, path: "/gone" }, { ruleId: 2, path: "/fifo" }],
  );
  const r = await v.round();
  assertEquals([r.skipped, r.unenforced, r.denied], [2, 0, 0]);
  assertEquals(v.unenforced, []);
});

Deno.test("verify: EPERM on the way (a denied directory) counts as denied; EACCES is inconclusive", async () => {
  const { v } = fake(
    { "/d/x": { lookupErrno: 1, openErrno: null }, "/m": { openErrno: 13 } },
    [{ ruleId: 1, path: "/d/x" }, { ruleId: 2, path: "/m" }],
  );
  const r = await v.round();
  assertEquals([r.denied, r.inconclusive, r.unenforced], [1, 1, 0]);
});

Deno.test("verify: a rule found open stays listed until it is denied or removed", async () => {
  const world: Record<string, Partial<PathProbe>> = { "/x": { openErrno: 0 } };
  const targets = [{ ruleId: 1, path: "/x" }, { ruleId: 2, path: "/y" }];
  const { v } = fake(world, targets);
  await v.round();
  assertEquals(v.unenforced.map((u) => u.rule_id), [1]);
  world["/x"] = { openErrno: 1 }; // e.g. applied again
  await v.round();
  assertEquals(v.unenforced, []);
  world["/x"] = { openErrno: 0 };
  await v.round();
  assertEquals(v.unenforced.length, 1);
  targets.shift(); // the rule was deleted
  await v.round();
  assertEquals(v.unenforced, []);
});

Deno.test("verify: bounded rounds try new rules first, then rotate through the rest", async () => {
  const targets = Array.from({ length: 5 }, (_, i) => ({ ruleId: i + 1, path: `/f${i + 1}` }));
  const { v, asked } = fake({}, targets, { limit: 2 });
  for (let i = 0; i < 4; i++) await v.round();
  assertEquals(asked, [["/f1", "/f2"], ["/f3", "/f4"], ["/f5", "/f1"], ["/f2", "/f3"]]);
  // a new rule (e.g. block add) goes first in the next round
  targets.push({ ruleId: 9, path: "/new" });
  await v.round();
  assertEquals(asked[4], ["/new", "/f4"]);
  // after invalidate (an apply) every rule is new again, in target order
  v.invalidate();
  await v.round();
  assertEquals(asked[5], ["/f1", "/f2"]);
});

Deno.test("verify: a probe that cannot leave the agent's cgroup fails the round, list unchanged", async () => {
  const { v } = fake({ "/x": { openErrno: 0 } }, [{ ruleId: 1, path: "/x" }], { cgroupErrno: 13 });
  await rejects(() => v.round(), /could not leave the agent's cgroup: EACCES/);
  assertEquals(v.unenforced, []);
  const never = fake({}, [{ ruleId: 1, path: "/x" }], { cgroupErrno: -1 });
  await rejects(() => never.v.round(), /never reported/);
});

Deno.test("verify: no rules, no probe; a bad limit is refused", async () => {
  const { v, asked } = fake({}, []);
  const r = await v.round();
  assertEquals(r.tried, 0);
  assertEquals(asked.length, 0);
  throws(() =>
    new RuleVerifier({
      targets: () => [],
      probe: () => {
        throw 0;
      },
      heldNow: () => null,
      limit: 0,
    }), RangeError);
  assert(v.lastRound);
});

Deno.test("verify: the problem line names at most three rules and counts the rest", async () => {
  const targets = Array.from({ length: 5 }, (_, i) => ({ ruleId: i + 1, path: `/f${i}` }));
  const world = Object.fromEntries(targets.map((t) => [t.path, { openErrno: 0 }]));
  const { v } = fake(world, targets);
  await v.round();
  const p = v.problem()!;
  assertMatch(p, /5 rule\(s\) not denied/);
  assertMatch(p, /; and 2 more$/);
});
