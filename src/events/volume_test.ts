import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import { fileBlock, netBlock } from "./records_testing.ts";
import {
  BLOCK_KEYS,
  type BlockRecord,
  EventVolume,
  volumeFields,
  type VolumeLine,
  type VolumeOptions,
} from "./volume.ts";

/** A volume over a fake clock (ms), advanced by hand. */
function volume(o: Omit<VolumeOptions, "now">) {
  const clock = { t: 0 };
  const v = new EventVolume<BlockRecord>({ ...o, now: () => clock.t }, BLOCK_KEYS);
  return { v, clock };
}

const pids = (lines: (VolumeLine<BlockRecord> | null)[]) =>
  lines.map((l) => l === null ? null : [l.item.pid, l.folded, l.foldedSince?.pid ?? null]);

Deno.test("volume: rate 1 and no window pass every event through untouched", () => {
  const { v } = volume({});
  strictEqual(v.active, false);
  const r = fileBlock();
  deepStrictEqual(v.offer(r), { item: r, folded: 0, foldedSince: null });
  deepStrictEqual(v.sweep(), []);
  deepStrictEqual(v.stats, { sampledOut: 0, folded: 0, untracked: 0 });
});

Deno.test("volume: 1 in N per rule, the first of each rule kept, the rest counted", () => {
  const { v } = volume({ sampleRate: 3 });
  strictEqual(v.active, true);
  const kept: number[] = [];
  for (let i = 0; i < 10; i++) if (v.offer(fileBlock({ pid: i }))) kept.push(i);
  deepStrictEqual(kept, [0, 3, 6, 9]);
  // another rule has its own counter: its first event is kept at once
  strictEqual(v.offer(fileBlock({ ruleId: 8, pid: 50 }))?.item.pid, 50);
  // so has the same rule under another action (AUDIT after BLOCK)
  strictEqual(v.offer(fileBlock({ action: 0, pid: 51 }))?.item.pid, 51);
  strictEqual(v.stats.sampledOut, 6);
});

Deno.test("volume: the sampling table is bounded; rules beyond it share one counter", () => {
  const { v } = volume({ sampleRate: 2, maxKeys: 2 });
  const kept = [1, 2, 3, 4, 5, 6].filter((id) => v.offer(fileBlock({ ruleId: id })) !== null);
  // rules 1 and 2 have counters (first kept); 3..6 share one: 3, 5 kept
  deepStrictEqual(kept, [1, 2, 3, 5]);
  strictEqual(v.stats.sampledOut, 2);
});

Deno.test("volume: repeats inside the window fold; the next event after it carries the count", () => {
  const { v, clock } = volume({ dedupWindowMs: 1000 });
  const out = [v.offer(fileBlock({ pid: 1 }))];
  clock.t = 100;
  out.push(v.offer(fileBlock({ pid: 2 })));
  clock.t = 500;
  out.push(v.offer(fileBlock({ pid: 3 })));
  clock.t = 999;
  out.push(v.offer(fileBlock({ pid: 4 })));
  clock.t = 1000;
  out.push(v.offer(fileBlock({ pid: 5 })));
  // first at once; 2, 3, 4 folded; 5 (window over) carries 3, since pid 2's event
  deepStrictEqual(pids(out), [[1, 0, null], null, null, null, [5, 3, 2]]);
  strictEqual(v.stats.folded, 3);
  // 5 opened a new window
  clock.t = 1500;
  strictEqual(v.offer(fileBlock({ pid: 6 })), null);
  strictEqual(v.pending, 1);
});

Deno.test("volume: a count with no later event is flushed at the window's end, never lost", () => {
  const { v, clock } = volume({ dedupWindowMs: 1000 });
  v.offer(fileBlock({ pid: 1, ktimeNs: 10 }));
  for (let i = 2; i <= 5; i++) {
    clock.t = i * 100;
    strictEqual(v.offer(fileBlock({ pid: i, ktimeNs: i * 10 })), null);
  }
  clock.t = 999;
  deepStrictEqual(v.sweep(), [], "the window still runs");
  clock.t = 1000;
  const flushed = v.sweep();
  // the last folded event (pid 5) written, standing for the three others since pid 2
  deepStrictEqual(pids(flushed), [[5, 3, 2]]);
  strictEqual(v.stats.folded, 3);
  strictEqual(v.pending, 0, "the window is closed");
  // so the key's next event is written at once, with no count
  clock.t = 1100;
  deepStrictEqual(pids([v.offer(fileBlock({ pid: 9 }))]), [[9, 0, null]]);
  deepStrictEqual(v.sweep(), []);
});

Deno.test("volume: one folded event is flushed on its own; a window with none is closed quietly", () => {
  const { v, clock } = volume({ dedupWindowMs: 1000 });
  v.offer(fileBlock({ pid: 1 }));
  v.offer(netBlock({ pid: 2 }));
  clock.t = 10;
  v.offer(fileBlock({ pid: 3 }));
  clock.t = 2000;
  deepStrictEqual(pids(v.sweep()), [[3, 0, null]]);
  strictEqual(v.pending, 0);
  strictEqual(v.stats.folded, 0);
});

Deno.test("volume: what folds: same rule, cgroup, uid, comm and object; not the pid", () => {
  const { v } = volume({ dedupWindowMs: 1000 });
  const written = [
    fileBlock(),
    fileBlock({ pid: 2, tid: 2, startTime: 77 }), // another process: folds
    fileBlock({ ino: 100 }), // another file
    fileBlock({ cgid: 43 }), // another cgroup
    fileBlock({ uid: 1000 }), // another user
    fileBlock({ comm: "less" }), // another command
    fileBlock({ action: 0 }), // AUDIT, not BLOCK
    fileBlock({ ruleId: 8 }), // another rule
    fileBlock({ hook: 1 }), // another hook
    netBlock(),
    netBlock({ pid: 5 }), // folds
    netBlock({ port: 80 }),
    netBlock({ addr: "10.0.0.2" }),
  ].map((r) => v.offer(r) !== null);
  deepStrictEqual(written, [
    true,
    false,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    true,
    false,
    true,
    true,
  ]);
});

Deno.test("volume: a full dedup table writes new keys unfolded and counts them", () => {
  const { v, clock } = volume({ dedupWindowMs: 1000, maxKeys: 2 });
  v.offer(fileBlock({ ino: 1 }));
  v.offer(fileBlock({ ino: 2 }));
  // full: ino 3 is written every time, never dropped
  strictEqual(v.offer(fileBlock({ ino: 3 }))?.folded, 0);
  strictEqual(v.offer(fileBlock({ ino: 3 }))?.folded, 0);
  strictEqual(v.stats.untracked, 2);
  strictEqual(v.offer(fileBlock({ ino: 1 })), null, "tracked keys still fold");
  clock.t = 1000;
  strictEqual(v.sweep().length, 1);
  strictEqual(v.pending, 0, "both windows closed (ino 2's folded nothing)");
  strictEqual(v.offer(fileBlock({ ino: 3 }))?.folded, 0);
  strictEqual(v.offer(fileBlock({ ino: 3 })), null, "room again: ino 3 has a window now");
  strictEqual(v.stats.untracked, 2);
});

Deno.test("volume: the sweep closes windows in start order; a restarted window moves to the end", () => {
  const { v, clock } = volume({ dedupWindowMs: 1000 });
  v.offer(fileBlock({ ino: 1, pid: 1 }));
  clock.t = 500;
  v.offer(fileBlock({ ino: 2, pid: 2 }));
  v.offer(fileBlock({ ino: 2, pid: 3 })); // folded in ino 2's window
  clock.t = 1200;
  v.offer(fileBlock({ ino: 1, pid: 4 })); // ino 1 restarts at 1200
  v.offer(fileBlock({ ino: 1, pid: 5 })); // folded
  deepStrictEqual(pids(v.sweep()), [], "ino 2's window ends at 1500");
  clock.t = 1500;
  deepStrictEqual(pids(v.sweep()), [[3, 0, null]]);
  clock.t = 2200;
  deepStrictEqual(pids(v.sweep()), [[5, 0, null]]);
});

Deno.test("volume: sampling comes before dedup; flushAll closes every window (shutdown)", () => {
  const { v, clock } = volume({ sampleRate: 2, dedupWindowMs: 60_000 });
  const out = [];
  for (let i = 0; i < 8; i++) {
    clock.t = i;
    out.push(v.offer(fileBlock({ pid: i })));
  }
  // kept by sampling: 0, 2, 4, 6; 0 written, 2, 4, 6 folded
  deepStrictEqual(pids(out.filter((l) => l !== null)), [[0, 0, null]]);
  strictEqual(v.stats.sampledOut, 4);
  deepStrictEqual(pids(v.flushAll()), [[6, 2, 2]]);
  strictEqual(v.stats.folded, 2);
  strictEqual(v.pending, 0);
  deepStrictEqual(v.flushAll(), []);
});

Deno.test("volume: the fields a line adds", () => {
  const wall = (k: BlockRecord["ktimeNs"]) => `t${k}`;
  const first = fileBlock({ ktimeNs: 5 });
  const r = fileBlock({ ktimeNs: 9 });
  deepStrictEqual(volumeFields({ item: r, folded: 0, foldedSince: null }, 1, wall), {});
  deepStrictEqual(volumeFields({ item: r, folded: 0, foldedSince: null }, 10, wall), {
    sample_rate: 10,
  });
  deepStrictEqual(volumeFields({ item: r, folded: 4, foldedSince: first }, 1, wall), {
    folded: 4,
    folded_since: "t5",
  });
});

Deno.test("volume: bad options are refused", () => {
  const now = () => 0;
  for (const sampleRate of [0, -1, 1.5, 1e309, NaN, 2_000_000]) {
    throws(() => new EventVolume({ sampleRate, now }, BLOCK_KEYS), RangeError, String(sampleRate));
  }
  for (const dedupWindowMs of [0, -5, Infinity, NaN]) {
    throws(() => new EventVolume({ dedupWindowMs, now }, BLOCK_KEYS), RangeError);
  }
});
