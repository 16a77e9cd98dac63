import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ResolvedPath } from "../bpf/path_rule.ts";
import { inodeKey } from "../bpf/rule_codec.ts";
import { kernelDev } from "../bpf/rule_codec.ts";
import type { Unresolved } from "./compile.ts";
import { fakeMaps } from "./fake_maps_testing.ts";
import {
  DEFAULT_MAX_TRACKED,
  DEFAULT_MAX_WATCHED_DIRS,
  DEFAULT_RECHECK_BUDGET,
  DEFAULT_RECHECK_MS,
  type FsWatcherLike,
  pathRuleEnforcer,
  type ResolvedEntry,
  UnresolvedWatcher,
  type UnresolvedWatcherDeps,
} from "./watch.ts";

const entry = (what: string, line = 2, section = "deny_path"): Unresolved => ({
  section,
  line,
  what,
  reason: "does not exist (yet)",
});

/** A watcher whose events the test pushes. */
class FakeWatcher implements FsWatcherLike {
  #queue: Deno.FsEvent[] = [];
  #wake: (() => void) | null = null;
  closed = false;
  constructor(readonly paths: string[]) {}
  push(ev: Deno.FsEvent) {
    this.#queue.push(ev);
    this.#wake?.();
  }
  close() {
    this.closed = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Deno.FsEvent> {
    while (!this.closed) {
      const ev = this.#queue.shift();
      if (ev) yield ev;
      else await new Promise<void>((r) => (this.#wake = r));
    }
  }
}

const flush = () => new Promise((r) => setTimeout(r, 0));

Deno.test("watcher (fake fs): watches nearest existing parents, moves down, resolves on events and rechecks", async () => {
  const files = new Set<string>();
  const dirs = new Set(["/", "/etc", "/opt"]);
  const watchers: FakeWatcher[] = [];
  const timers: (() => void)[] = [];
  const enforced: [string, number][] = [];
  const resolved: ResolvedEntry[] = [];
  let now = 0;
  const w = new UnresolvedWatcher(
    [
      entry("/etc/a.conf"),
      entry("/opt/app/bin/tool", 3, "protect_path"),
      entry("/web", 4, "allow_cgroup"),
    ],
    {
      enforce: (e, r) => enforced.push([e.what, r.ino]),
      onResolved: (r) => resolved.push(r),
      resolvePath: (p): ResolvedPath =>
        files.has(p)
          ? { status: "resolved", path: p, canonical: p, dev: 1, ino: p.length }
          : { status: "unresolved", path: p, reason: "missing" },
      isDir: (p) => dirs.has(p),
      watchFs: (paths) => {
        const f = new FakeWatcher(paths);
        watchers.push(f);
        return f;
      },
      setInterval: (fn) => timers.push(fn),
      clearInterval: () => {},
      now: () => now,
    },
  );
  deepStrictEqual(w.start(), []);
  deepStrictEqual(w.watchedDirs, ["/etc", "/opt"]);
  strictEqual(w.pendingCount, 3);
  deepStrictEqual(w.pending().map((p) => p.watching), ["/etc", "/opt", null]);

  // a file appears in /etc
  now = 120;
  files.add("/etc/a.conf");
  watchers[0].push({ kind: "create", paths: ["/etc/a.conf"] });
  await flush();
  deepStrictEqual(enforced, [["/etc/a.conf", 11]]);
  strictEqual(resolved[0].pendingMs, 120);
  strictEqual(resolved[0].via, "watch");
  // an intermediate directory appears: the watch moves down to it
  dirs.add("/opt/app");
  watchers[0].push({ kind: "create", paths: ["/opt/app"] });
  await flush();
  deepStrictEqual(watchers.at(-1)!.paths, ["/opt/app"]);
  ok(watchers[0].closed);
  // the periodic re-check finds what no event announced
  dirs.add("/opt/app/bin");
  files.add("/opt/app/bin/tool");
  timers[0]();
  deepStrictEqual(enforced.map((e) => e[0]), ["/etc/a.conf", "/opt/app/bin/tool"]);
  strictEqual(resolved[1].via, "recheck");
  // the cgroup entry is never watched and stays pending
  deepStrictEqual(w.pending().map((p) => [p.section, p.watching]), [["allow_cgroup", null]]);
  deepStrictEqual(w.watchedDirs, []);
  w.stop();
  w.stop();
});

Deno.test("watcher: the watch budget bounds directories; the rest waits for the re-check", () => {
  const made: string[][] = [];
  const w = new UnresolvedWatcher([entry("/a/x"), entry("/b/x"), entry("/c/x")], {
    enforce: () => {},
    resolvePath: (p) => ({ status: "unresolved", path: p, reason: "missing" }),
    isDir: (p) => ["/a", "/b", "/c", "/"].includes(p),
    watchFs: (p) => {
      made.push(p);
      return new FakeWatcher(p);
    },
    recheckMs: 0,
    maxWatchedDirs: 2,
  });
  w.start();
  deepStrictEqual(made, [["/a", "/b"]]);
  deepStrictEqual(w.pending().map((p) => p.watching), ["/a", "/b", null]);
  w.stop();
});

Deno.test("watcher: an enforce failure keeps the entry pending and is reported", () => {
  const errors: string[] = [];
  let fail = true;
  const w = new UnresolvedWatcher([entry("/x")], {
    enforce: () => {
      if (fail) throw new Error("map full");
    },
    onError: (what, e) => errors.push(`${what}: ${(e as Error).message}`),
    resolvePath: (p) => ({ status: "resolved", path: p, canonical: p, dev: 1, ino: 9 }),
    watchFs: (p) => new FakeWatcher(p),
    recheckMs: 0,
  });
  deepStrictEqual(w.checkNow(), []);
  deepStrictEqual(errors, ["/x: map full"]);
  strictEqual(w.pendingCount, 1);
  fail = false;
  strictEqual(w.checkNow().length, 1);
  strictEqual(w.pendingCount, 0);
  w.stop();
});

Deno.test("watcher (real temp dir, inotify): creating the file enforces its inode at once", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/sub/later.bin`;
  const fm = fakeMaps();
  const enforce = pathRuleEnforcer(fm.maps);
  let resolve!: (r: ResolvedEntry) => void;
  let reject!: (e: unknown) => void;
  const got = new Promise<ResolvedEntry>((r, j) => [resolve, reject] = [r, j]);
  const w = new UnresolvedWatcher([entry(path, 7)], {
    enforce,
    onResolved: resolve,
    // an error fails the test (it would otherwise wait for an event forever)
    onError: (what, e) => reject(new Error(`${what}: ${e}`)),
    // realpath + stat (resolveRulePath also reads /proc/self/mountinfo, which
    // needs --allow-all; the watcher is what is tested here)
    resolvePath: (p): ResolvedPath => {
      try {
        const canonical = Deno.realPathSync(p);
        const st = Deno.statSync(canonical);
        return { status: "resolved", path: p, canonical, dev: kernelDev(st.dev), ino: st.ino! };
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) {
          return { status: "unresolved", path: p, reason: "x" };
        }
        throw e;
      }
    },
    recheckMs: 60_000, // only the watch can find it within the test
  });
  try {
    w.start();
    deepStrictEqual(w.watchedDirs, [dir]);
    Deno.mkdirSync(`${dir}/sub`);
    // wait until the watch moved down into sub/
    for (let i = 0; i < 200 && w.watchedDirs[0] !== `${dir}/sub`; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    deepStrictEqual(w.watchedDirs, [`${dir}/sub`]);
    Deno.writeTextFileSync(path, "x");
    const r = await got;
    const st = Deno.statSync(path);
    strictEqual(r.ino, st.ino);
    strictEqual(r.via, "watch");
    const v = fm.get("aegis_deny_inode").lookup(inodeKey(kernelDev(st.dev), st.ino!, 0));
    ok(v, "rule written into the live generation");
    strictEqual(new DataView(v.buffer).getUint32(0, true), 7, "rule id = policy line");
    strictEqual(w.pendingCount, 0);
  } finally {
    w.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});

// ---- bounds ----

/** A fake file system that counts every stat / realpath the watcher makes. */
function fakeFs(dirs: string[]) {
  const fs = {
    files: new Set<string>(),
    dirs: new Set(["/", ...dirs]),
    resolves: [] as string[],
    stats: 0,
    watchers: [] as FakeWatcher[],
    timers: [] as (() => void)[],
    deps(over: Partial<UnresolvedWatcherDeps> = {}): UnresolvedWatcherDeps {
      return {
        enforce: () => {},
        resolvePath: (p): ResolvedPath => {
          fs.resolves.push(p);
          return fs.files.has(p)
            ? { status: "resolved", path: p, canonical: p, dev: 1, ino: 5 }
            : { status: "unresolved", path: p, reason: "missing" };
        },
        isDir: (p) => {
          fs.stats++;
          return fs.dirs.has(p);
        },
        watchFs: (paths) => {
          const f = new FakeWatcher(paths);
          fs.watchers.push(f);
          return f;
        },
        setInterval: (fn) => fs.timers.push(fn),
        clearInterval: () => {},
        ...over,
      };
    },
  };
  return fs;
}

Deno.test("watcher bounds: the daemon's defaults are the documented ones", () => {
  strictEqual(DEFAULT_RECHECK_MS, 5000);
  strictEqual(DEFAULT_RECHECK_BUDGET, 2000);
  strictEqual(DEFAULT_MAX_WATCHED_DIRS, 64);
  strictEqual(DEFAULT_MAX_TRACKED, 131_072);
});

Deno.test("watcher bounds: 10,000 paths under two parents are two watches and one stat per parent", () => {
  const fs = fakeFs(["/a", "/b"]);
  const paths = Array.from({ length: 10_000 }, (_, i) => `/${i % 2 ? "a" : "b"}/missing-${i}`);
  const nested = Array.from({ length: 1000 }, (_, i) => `/a/gone-${i % 10}/f${i}`);
  const w = new UnresolvedWatcher([...paths, ...nested].map((p) => entry(p)), fs.deps());
  w.start();
  deepStrictEqual(fs.watchers.map((f) => f.paths), [["/a", "/b"]]);
  // 2 parents + 10 missing directories (cached per pass), and the two watched
  // directories checked when the watch was set up
  ok(fs.stats <= 2 + 10 + 2 + 10, `stats: ${fs.stats}`);
  // the 1000 nested paths share 10 gates (their missing directories): not resolved
  strictEqual(w.gateCount, 10_000 + 10);
  strictEqual(w.pendingCount, 11_000);
  ok(
    fs.resolves.every((p) => !p.includes("/gone-")),
    "a path below a missing directory is not resolved",
  );
  w.stop();
});

Deno.test("watcher bounds: an event checks only the gate it names", async () => {
  const fs = fakeFs(["/a"]);
  const w = new UnresolvedWatcher(
    Array.from({ length: 1000 }, (_, i) => entry(`/a/f${i}`)),
    fs.deps({ recheckMs: 0 }),
  );
  w.start();
  fs.resolves.length = 0;
  fs.files.add("/a/f500");
  fs.watchers[0].push({ kind: "create", paths: ["/a/f500"] });
  fs.watchers[0].push({ kind: "create", paths: ["/a/unrelated"] });
  await flush();
  deepStrictEqual(fs.resolves, ["/a/f500"]);
  strictEqual(w.pendingCount, 999);
  w.stop();
});

Deno.test("watcher bounds: each tick re-checks at most recheckBudget gates, round robin", () => {
  const fs = fakeFs(["/a"]);
  const resolved: string[] = [];
  const w = new UnresolvedWatcher(
    Array.from({ length: 10 }, (_, i) => entry(`/a/f${i}`)),
    fs.deps({ recheckBudget: 3, onResolved: (r) => resolved.push(r.entry.what) }),
  );
  w.start();
  strictEqual(fs.timers.length, 1);
  const ticks: string[][] = [];
  for (let i = 0; i < 4; i++) {
    fs.resolves.length = 0;
    fs.timers[0]();
    ticks.push([...fs.resolves]);
  }
  deepStrictEqual(ticks, [
    ["/a/f0", "/a/f1", "/a/f2"],
    ["/a/f3", "/a/f4", "/a/f5"],
    ["/a/f6", "/a/f7", "/a/f8"],
    ["/a/f9", "/a/f0", "/a/f1"],
  ]);
  // a path that appears unseen by the watch is found within ceil(10 / 3) ticks
  fs.files.add("/a/f4");
  for (let i = 0; i < 4 && resolved.length === 0; i++) fs.timers[0]();
  deepStrictEqual(resolved, ["/a/f4"]);
  strictEqual(w.pendingCount, 9);
  w.stop();
});

Deno.test("watcher bounds: paths beyond maxTracked are reported once and never checked", () => {
  const fs = fakeFs(["/a"]);
  const errors: string[] = [];
  const w = new UnresolvedWatcher(
    [...Array.from({ length: 5 }, (_, i) => entry(`/a/f${i}`)), entry("/cg", 9, "allow_cgroup")],
    fs.deps({
      maxTracked: 3,
      onError: (what, e) => errors.push(`${what}: ${(e as Error).message}`),
    }),
  );
  w.start();
  fs.timers[0]();
  deepStrictEqual(errors, [
    "unresolved paths: 2 of 5 missing policy paths are beyond the limit of 3 watched paths; " +
    "they are not enforced when they appear (apply the policy again once they exist)",
  ]);
  strictEqual(w.untrackedCount, 2);
  deepStrictEqual(w.pending(2).map((p) => p.what), ["/a/f0", "/a/f1"], "a report can be capped");
  strictEqual(w.pendingCount, 6, "untracked and cgroup entries are still reported as pending");
  ok(!fs.resolves.includes("/a/f3") && !fs.resolves.includes("/a/f4"));
  deepStrictEqual(
    w.pending().map((p) => [p.what, p.watching]),
    [["/a/f0", "/a"], ["/a/f1", "/a"], ["/a/f2", "/a"], ["/a/f3", null], ["/a/f4", null], [
      "/cg",
      null,
    ]],
  );
  w.stop();
});

Deno.test("watcher bounds: at most maxWatchedDirs watches, the directories with the most paths first", () => {
  const fs = fakeFs(["/a", "/b", "/c"]);
  const w = new UnresolvedWatcher(
    [entry("/a/1"), entry("/b/1"), entry("/b/2"), entry("/c/1"), entry("/c/2"), entry("/c/3")],
    fs.deps({ maxWatchedDirs: 2 }),
  );
  w.start();
  deepStrictEqual(w.watchedDirs, ["/b", "/c"]);
  w.stop();
});

Deno.test("watcher bounds: a watched directory removed: its paths move up to the nearest existing parent", () => {
  const fs = fakeFs(["/a", "/a/b"]);
  const w = new UnresolvedWatcher([entry("/a/b/f")], fs.deps());
  w.start();
  deepStrictEqual(w.watchedDirs, ["/a/b"]);
  fs.dirs.delete("/a/b");
  fs.timers[0](); // finds /a/b gone; its gate moves up to /a/b under /a
  fs.timers[0]();
  deepStrictEqual(w.watchedDirs, ["/a"]);
  deepStrictEqual(w.pending().map((p) => p.watching), ["/a"]);
  // it comes back with the file: found by the next re-check
  fs.dirs.add("/a/b");
  fs.files.add("/a/b/f");
  fs.timers[0]();
  strictEqual(w.pendingCount, 0);
  w.stop();
});

Deno.test("watcher: a path and a path below it share a gate; each is handled when it appears", async () => {
  const fs = fakeFs(["/a"]);
  const resolved: string[] = [];
  const w = new UnresolvedWatcher(
    [entry("/a/b", 2), entry("/a/b/c", 3)],
    fs.deps({ onResolved: (r) => resolved.push(r.entry.what) }),
  );
  w.start();
  strictEqual(w.gateCount, 1);
  // /a/b appears as a file: its own rule applies; /a/b/c waits (under a file it never resolves)
  fs.files.add("/a/b");
  fs.watchers[0].push({ kind: "create", paths: ["/a/b"] });
  await flush();
  deepStrictEqual(resolved, ["/a/b"]);
  deepStrictEqual(w.pending().map((p) => p.what), ["/a/b/c"]);
  w.stop();
  // as a directory: its rule applies and the path below moves down into it
  const fs2 = fakeFs(["/a"]);
  const got: string[] = [];
  const w2 = new UnresolvedWatcher(
    [entry("/a/b", 2), entry("/a/b/c", 3)],
    fs2.deps({ onResolved: (r) => got.push(r.entry.what) }),
  );
  w2.start();
  fs2.dirs.add("/a/b");
  fs2.files.add("/a/b");
  fs2.watchers[0].push({ kind: "create", paths: ["/a/b"] });
  await flush();
  deepStrictEqual(got, ["/a/b"]);
  deepStrictEqual(w2.pending().map((p) => [p.what, p.watching]), [["/a/b/c", "/a/b"]]);
  w2.stop();
});

Deno.test("watcher bounds: a large batch lists each parent once and resolves only the names present", () => {
  const fs = fakeFs(["/a"]);
  const listed: string[] = [];
  fs.files.add("/a/f7");
  const w = new UnresolvedWatcher(
    Array.from({ length: 100 }, (_, i) => entry(`/a/f${i}`)),
    fs.deps({
      listDir: (dir) => {
        if (dir !== "/a") return null; // only /a is listable here
        listed.push(dir);
        return new Set(["f7", "other"]);
      },
    }),
  );
  const first = w.start();
  // listed to file the paths, and again once the watch is set up (what appeared in between)
  deepStrictEqual(listed, ["/a", "/a"]);
  deepStrictEqual(fs.resolves.filter((p) => p !== "/a/f7").length, 0, "missing names not resolved");
  deepStrictEqual(first.map((r) => r.entry.what), ["/a/f7"]);
  strictEqual(w.pendingCount, 99);
  // a listing that cannot be used (too large, unreadable): every path is resolved
  const fs2 = fakeFs(["/a"]);
  const w2 = new UnresolvedWatcher(
    Array.from({ length: 100 }, (_, i) => entry(`/a/f${i}`)),
    fs2.deps({ listDir: () => null, recheckMs: 0 }),
  );
  w2.start();
  strictEqual(new Set(fs2.resolves).size, 100);
  w.stop();
  w2.stop();
});

Deno.test("watcher bounds: a tick lists a parent with many gates once instead of a realpath per gate", () => {
  const fs = fakeFs(["/a"]);
  const listed: number[] = [];
  const w = new UnresolvedWatcher(
    Array.from({ length: 100 }, (_, i) => entry(`/a/f${i}`)),
    fs.deps({
      recheckBudget: 50,
      listDir: (dir, max) => {
        if (dir !== "/a") return null;
        listed.push(max);
        return new Set(fs.files.has("/a/f60") ? ["f60"] : []);
      },
    }),
  );
  w.start();
  fs.resolves.length = 0;
  listed.length = 0;
  fs.files.add("/a/f60");
  fs.timers[0]();
  deepStrictEqual(listed, [50], "one listing, of at most the tick's budget of names");
  deepStrictEqual(fs.resolves, []);
  fs.timers[0]();
  deepStrictEqual(fs.resolves, ["/a/f60"]);
  strictEqual(w.pendingCount, 99);
  w.stop();
});

Deno.test("watcher bounds: a tick's listing also answers for missing directories (no stat each)", () => {
  const fs = fakeFs(["/a"]);
  const w = new UnresolvedWatcher(
    Array.from({ length: 100 }, (_, i) => entry(`/a/d${i}/f`)),
    fs.deps({
      listDir: (dir) => dir !== "/a" ? null : new Set(fs.dirs.has("/a/d9") ? ["d9"] : []),
    }),
  );
  w.start();
  strictEqual(w.gateCount, 100);
  fs.stats = 0;
  fs.timers[0]();
  strictEqual(fs.stats, 1, "only the watched directory itself is checked");
  fs.dirs.add("/a/d9");
  fs.files.add("/a/d9/f");
  fs.timers[0]();
  strictEqual(w.pendingCount, 99);
  w.stop();
});

Deno.test("watcher bounds: filing 100 paths below 100 missing directories lists their parent once", () => {
  const fs = fakeFs(["/a"]);
  const listed: string[] = [];
  const w = new UnresolvedWatcher(
    Array.from({ length: 100 }, (_, i) => entry(`/a/d${i}/f`)),
    fs.deps({
      recheckMs: 0,
      listDir: (dir) => {
        listed.push(dir);
        return dir === "/a" ? new Set(["other"]) : dir === "/" ? new Set(["a"]) : null;
      },
    }),
  );
  w.start();
  strictEqual(w.gateCount, 100);
  strictEqual(
    fs.stats,
    2,
    "/a itself, once to file and once to watch: no stat per missing directory",
  );
  deepStrictEqual(w.watchedDirs, ["/a"]);
  w.stop();
});
