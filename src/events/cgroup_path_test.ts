import { ok, strictEqual } from "node:assert/strict";
import { CgroupPathResolver, hostCgroup2Mount } from "./cgroup_path.ts";
import { cgroup2MountFrom as findCgroup2Mount } from "../util/mountinfo.ts";

/** A fake cgroup2 mount: plain directories; ids are their inode numbers. */
async function fakeTree(dirs: string[]): Promise<{ root: string; id: (rel: string) => number }> {
  const root = await Deno.makeTempDir({ prefix: "aegis-cg-" });
  for (const d of dirs) Deno.mkdirSync(`${root}${d}`, { recursive: true });
  return { root, id: (rel) => Deno.statSync(`${root}${rel === "/" ? "" : rel}`).ino! };
}

Deno.test("cgroup path: ids resolve to paths under the mount, root is /", async () => {
  const t = await fakeTree(["/system.slice/ssh.service", "/user.slice/user-0.slice"]);
  try {
    const r = new CgroupPathResolver({ root: t.root });
    strictEqual(r.resolve(t.id("/system.slice/ssh.service")), "/system.slice/ssh.service");
    strictEqual(r.resolve(t.id("/user.slice/user-0.slice")), "/user.slice/user-0.slice");
    strictEqual(r.resolve(t.id("/")), "/");
    strictEqual(r.stats.rescans, 1, "one walk filled the cache for all of them");
    strictEqual(r.resolve(t.id("/user.slice")), "/user.slice");
    ok(r.stats.hits >= 3);
  } finally {
    await Deno.remove(t.root, { recursive: true });
  }
});

Deno.test("cgroup path: misses rescan at most once per interval; unknown is null", async () => {
  const t = await fakeTree(["/a"]);
  try {
    let now = 0;
    const r = new CgroupPathResolver({ root: t.root, rescanIntervalMs: 1000, now: () => now });
    strictEqual(r.resolve(t.id("/a")), "/a");
    strictEqual(r.stats.rescans, 1);
    // a burst of events from a cgroup created after the scan: one rescan at most
    Deno.mkdirSync(`${t.root}/b`);
    const b = t.id("/b");
    now = 10;
    for (let i = 0; i < 10_000; i++) strictEqual(r.resolve(b), null);
    strictEqual(r.stats.rescans, 1, "misses within the interval do not walk the tree");
    strictEqual(r.stats.throttled, 10_000);
    now = 1010;
    strictEqual(r.resolve(b), "/b");
    strictEqual(r.stats.rescans, 2);
    // an id that is nowhere stays null, and costs one rescan per interval
    now = 5000;
    strictEqual(r.resolve(987654321), null);
    strictEqual(r.resolve(987654321), null);
    strictEqual(r.stats.rescans, 3);
  } finally {
    await Deno.remove(t.root, { recursive: true });
  }
});

Deno.test("cgroup path: the cache is bounded (LRU) and removed cgroups are forgotten", async () => {
  const names = Array.from({ length: 20 }, (_, i) => `/c${i}`);
  const t = await fakeTree(names);
  try {
    let now = 0;
    const r = new CgroupPathResolver({
      root: t.root,
      capacity: 4,
      rescanIntervalMs: 0,
      now: () => now,
    });
    for (const n of names) {
      now += 1;
      strictEqual(r.resolve(t.id(n)), n);
      ok(r.size <= 4, `cache holds ${r.size}`);
    }
    // recently used stays, the rest was evicted and comes back by rescan
    const rescans = r.stats.rescans;
    strictEqual(r.resolve(t.id(names[19])), names[19]);
    strictEqual(r.stats.rescans, rescans);
    const gone = t.id("/c19");
    Deno.removeSync(`${t.root}/c19`);
    now += 1;
    strictEqual(r.resolve(t.id("/c0")), "/c0"); // a rescan that no longer finds c19
    strictEqual(r.resolve(gone), null);
  } finally {
    await Deno.remove(t.root, { recursive: true });
  }
});

Deno.test("cgroup path: a rescan visits at most maxScanDirs directories", async () => {
  const t = await fakeTree(Array.from({ length: 30 }, (_, i) => `/d${i}`));
  try {
    const r = new CgroupPathResolver({ root: t.root, maxScanDirs: 10 });
    r.resolve(1);
    strictEqual(r.stats.lastScanDirs, 10);
    strictEqual(r.stats.truncatedScans, 1);
  } finally {
    await Deno.remove(t.root, { recursive: true });
  }
});

Deno.test("cgroup2MountFrom: unified and hybrid layouts, escaped names", () => {
  const unified = "25 1 0:22 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
  const hybrid = "30 25 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n" +
    "31 25 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  strictEqual(findCgroup2Mount(unified), "/sys/fs/cgroup");
  strictEqual(findCgroup2Mount(hybrid), "/sys/fs/cgroup/unified");
  strictEqual(findCgroup2Mount("40 1 0:5 / /mnt/my\\040cg rw - cgroup2 none rw\n"), "/mnt/my cg");
  strictEqual(findCgroup2Mount("30 25 0:26 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw\n"), null);
});

/** "0::/path" of this process, or null without a readable cgroup v2 mount. */
function ownCgroup(): string | null {
  try {
    Deno.statSync(`${hostCgroup2Mount()}/cgroup.procs`);
    const line = Deno.readTextFileSync("/proc/self/cgroup").split("\n").find((l) =>
      l.startsWith("0::")
    );
    return line ? line.slice(3) : null;
  } catch {
    return null;
  }
}
const OWN = ownCgroup();

Deno.test({
  name: OWN === null
    ? "cgroup path: own cgroup (SKIPPED: no readable cgroup v2 mount; Deno needs -A for /proc and /sys)"
    : "cgroup path: this process's own cgroup on the host's cgroup2 mount",
  ignore: OWN === null,
  fn: () => {
    const rel = OWN!;
    const id = Deno.statSync(`${hostCgroup2Mount()}${rel === "/" ? "" : rel}`).ino!;
    strictEqual(new CgroupPathResolver().resolve(id), rel);
  },
});
