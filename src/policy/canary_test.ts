/**
 * policy apply --canary (docs/policy.md, "Canary apply"): the watch with a
 * fake clock and counter, the rollback over fake maps.
 */
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { applyPolicyBytes } from "./apply.ts";
import {
  applyWithCanary,
  type CanaryOptions,
  checkCanaryOptions,
  EMPTY_POLICY,
  watchDenyRate,
  type WatchDeps,
} from "./canary.ts";
import { fakeApplyDeps } from "./fake_maps_testing.ts";
import type { PolicyApplyReport } from "./apply.ts";
import { liveGeneration } from "./generations.ts";

/** A clock that sleep() advances and a counter that grows by `perSecond`. */
function fakeWatch(perSecond: (t: number) => number): WatchDeps & { slept: number[] } {
  let t = 0;
  let n = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => t,
    count: () => n,
    sleep: (ms) => {
      slept.push(ms);
      for (let i = 0; i < ms; i += 1000) n += perSecond(t + i);
      t += ms;
      return Promise.resolve();
    },
  };
}

Deno.test("watch: the whole window below the threshold is kept; the verdict has the rate", async () => {
  const w = fakeWatch(() => 1);
  const v = await watchDenyRate({ windowSeconds: 10, thresholdPerS: 2 }, w);
  deepStrictEqual(v, { crossed: false, denies: 10, elapsed_ms: 10_000, rate_per_s: 1 });
  strictEqual(w.slept.length, 10);
});

Deno.test("watch: a rate above the threshold stops at the first check after the settle time", async () => {
  const w = fakeWatch(() => 50);
  const v = await watchDenyRate({ windowSeconds: 60, thresholdPerS: 2 }, w);
  deepStrictEqual(v, { crossed: true, denies: 250, elapsed_ms: 5000, rate_per_s: 50 });
  // a burst in the first second only: the average falls below 2/s before the settle time ends
  const burst = await watchDenyRate(
    { windowSeconds: 60, thresholdPerS: 2 },
    fakeWatch((t) => (t === 0 ? 8 : 0)),
  );
  strictEqual(burst.crossed, false);
  // a window shorter than the settle time: judged at its end
  const short = await watchDenyRate({ windowSeconds: 2, thresholdPerS: 0 }, fakeWatch(() => 1));
  deepStrictEqual([short.crossed, short.elapsed_ms], [true, 2000]);
});

Deno.test("canary options: bad windows and thresholds are usage errors naming the option", () => {
  const bad: [CanaryOptions, RegExp][] = [
    [{ windowSeconds: 0, thresholdPerS: 1 }, /--canary/],
    [{ windowSeconds: 3601, thresholdPerS: 1 }, /--canary: at most 3600/],
    [{ windowSeconds: 1e300, thresholdPerS: 1 }, /--canary/],
    [{ windowSeconds: 10, thresholdPerS: -1 }, /--canary-threshold/],
    [{ windowSeconds: 10, thresholdPerS: NaN }, /--canary-threshold/],
    [{ windowSeconds: 10, thresholdPerS: Infinity }, /--canary-threshold/],
  ];
  for (const [o, re] of bad) throws(() => checkCanaryOptions(o), re, JSON.stringify(o));
});

function pipeline(dir: string) {
  return fakeApplyDeps(dir);
}

const enc = (s: string) => new TextEncoder().encode(s);
const OLD = "version=1\n[deny_path]\n/a\n";
const NEW = "version=1\n[deny_path]\n/a\n/bb\n/ccc\n";

Deno.test("canary: kept below the threshold; rolled back above it to the previous policy, live rules kept", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { fm, live, deps } = pipeline(dir);
    await applyPolicyBytes(deps, { file: "old.conf", bytes: enc(OLD) });
    live.add({ kind: "ip", ip: "192.0.2.1" });
    const applied: PolicyApplyReport[] = [];
    const quiet = await applyWithCanary(deps, { file: "new.conf", bytes: enc(NEW) }, {
      windowSeconds: 3,
      thresholdPerS: 5,
    }, { ...fakeWatch(() => 1), onApplied: (r) => applied.push(r) });
    deepStrictEqual([quiet.canary.outcome, quiet.canary.rollback], ["kept", null]);
    strictEqual(fm.get("aegis_deny_inode").data.size, 3);
    strictEqual(applied.length, 1);

    const gen = liveGeneration(fm.maps);
    const loud = await applyWithCanary(
      deps,
      {
        file: "new2.conf",
        bytes: enc(NEW + "/dddd\n"),
      },
      { windowSeconds: 60, thresholdPerS: 5 },
      {
        ...fakeWatch(() => 100),
        onApplied: (r) => applied.push(r),
      },
    );
    strictEqual(loud.canary.outcome, "rolled_back");
    strictEqual(loud.canary.rollback?.file, `${dir}/policy.applied`);
    deepStrictEqual(loud.canary.rollback?.generation, { from: 1 - gen, to: gen });
    strictEqual(fm.get("aegis_deny_inode").data.size, 3, "the rules of new.conf again");
    strictEqual(Deno.readTextFileSync(`${dir}/policy.applied`), NEW);
    strictEqual(Deno.readTextFileSync(`${dir}/policy.prev`), NEW + "/dddd\n");
    strictEqual(fm.get("aegis_deny_ip4").data.size, 1, "the live rule stays");
    strictEqual(live.rules().length, 1);
    strictEqual(applied.length, 3, "the candidate and the rollback were announced");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("canary: nothing applied before: the rollback applies no rules", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { fm, deps } = pipeline(dir);
    const r = await applyWithCanary(deps, { file: "new.conf", bytes: enc(NEW) }, {
      windowSeconds: 10,
      thresholdPerS: 0,
    }, fakeWatch(() => 1));
    strictEqual(r.canary.outcome, "rolled_back");
    strictEqual(fm.get("aegis_deny_inode").data.size, 0);
    strictEqual(Deno.readTextFileSync(`${dir}/policy.applied`), EMPTY_POLICY);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("canary: another apply during the window is never undone; --reset and --dry-run refused", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { fm, deps } = pipeline(dir);
    await applyPolicyBytes(deps, { file: "old.conf", bytes: enc(OLD) });
    const w = fakeWatch(() => 100);
    const sleep = w.sleep!;
    let other = false;
    w.sleep = async (ms) => {
      if (!other) {
        other = true; // someone applies meanwhile
        await applyPolicyBytes(deps, {
          file: "other.conf",
          bytes: enc("version=1\n[deny_path]\n/z\n"),
        });
      }
      return sleep(ms);
    };
    const r = await applyWithCanary(deps, { file: "new.conf", bytes: enc(NEW) }, {
      windowSeconds: 60,
      thresholdPerS: 1,
    }, w);
    deepStrictEqual([r.canary.crossed, r.canary.outcome], [true, "superseded"]);
    ok(Deno.readTextFileSync(`${dir}/policy.applied`).includes("/z"));
    strictEqual(fm.get("aegis_deny_inode").data.size, 1);
    const o = { windowSeconds: 5, thresholdPerS: 1 };
    await rejects(
      applyWithCanary(deps, { file: "n", bytes: enc(NEW), reset: true }, o, fakeWatch(() => 0)),
      /--reset/,
    );
    await rejects(
      applyWithCanary(deps, { file: "n", bytes: enc(NEW), dryRun: true }, o, fakeWatch(() => 0)),
      /--dry-run/,
    );
    ok(Deno.readTextFileSync(`${dir}/policy.applied`).includes("/z"), "nothing changed");
    // a rejected candidate: nothing applied, nothing watched
    await rejects(
      applyWithCanary(
        deps,
        { file: "bad", bytes: enc("version=1\n[nope]\n") },
        o,
        fakeWatch(() => 0),
      ),
      /POLICY_INVALID|rejected/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("canary: a refused rollback leaves the candidate enforcing and says why", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { fm, deps } = pipeline(dir);
    await applyPolicyBytes(deps, { file: "old.conf", bytes: enc(OLD) });
    const inodes = fm.get("aegis_deny_inode");
    const r = await applyWithCanary(deps, { file: "new.conf", bytes: enc(NEW) }, {
      windowSeconds: 10,
      thresholdPerS: 1,
    }, {
      ...fakeWatch(() => 100),
      // the map refuses every write from the candidate's apply on
      onApplied: () => inodes.failAfter = 0,
    });
    deepStrictEqual([r.canary.outcome, r.canary.rollback], ["rollback_failed", null]);
    ok(r.canary.error && r.canary.error.length > 0);
    strictEqual(Deno.readTextFileSync(`${dir}/policy.applied`), NEW, "the candidate is applied");
    strictEqual(inodes.data.size, 3, "and enforcing");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
