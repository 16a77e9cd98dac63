import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ResolvedPath } from "../bpf/path_rule.ts";
import { inodeKey } from "../bpf/rule_codec.ts";
import { kernelDev } from "../bpf/rule_codec.ts";
import type { Unresolved } from "./compile.ts";
import { fakeMaps } from "./fake_maps_test.ts";
import {
  type FsWatcherLike,
  pathRuleEnforcer,
  type ResolvedEntry,
  UnresolvedWatcher,
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
  const got = new Promise<ResolvedEntry>((r) => (resolve = r));
  const w = new UnresolvedWatcher([entry(path, 7)], {
    enforce,
    onResolved: resolve,
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
