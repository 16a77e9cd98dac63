import { deepStrictEqual as eq, ok, strictEqual } from "node:assert/strict";
import { ContentWatcher, type DirWatch } from "./content_watch.ts";
import type { ContentMatch, ScanFs } from "../policy/content_scan.ts";
import { sha256Hex } from "../util/bytes.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** A directory watch the test feeds by hand. */
function handWatch(): DirWatch & { push(kind: string, ...paths: string[]): void; closed: boolean } {
  const queue: { kind: string; paths: string[] }[] = [];
  let wake: (() => void) | null = null;
  const w = {
    closed: false,
    push(kind: string, ...paths: string[]) {
      queue.push({ kind, paths });
      wake?.();
    },
    close() {
      w.closed = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      while (!w.closed) {
        if (queue.length > 0) yield queue.shift()!;
        else await new Promise<void>((r) => wake = r);
      }
    },
  };
  return w;
}

function memFs(files: Map<string, string>): ScanFs & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    *readDir() {},
    stat: (p) => {
      const f = files.get(p);
      return f === undefined ? null : { isFile: true, isDirectory: false, size: f.length, id: p };
    },
    hashFile: async (p) => {
      reads.push(p);
      return { sha256: await sha256Hex(enc(files.get(p)!)), bytes: files.get(p)!.length };
    },
    isSymlink: (p) => p.endsWith(".lnk"),
  };
}

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("content watch: a file written into a scanned directory is hashed once its writes are quiet; a denied content is a match", async () => {
  const sha = await sha256Hex(enc("denied"));
  const files = new Map<string, string>();
  const fs = memFs(files);
  const w = handWatch();
  const matches: ContentMatch[] = [];
  const errors: string[] = [];
  const cw = new ContentWatcher({
    dirs: ["/usr/bin", "/bin", "/opt/none"],
    denied: new Map([[sha, 4]]),
    onMatch: (m) => matches.push(m),
    onError: (what, e) => errors.push(`${what}: ${e}`),
    fs,
    watch: (dirs) => {
      eq(dirs, ["/usr/bin"], "each real directory once; a missing one is not watched");
      return w;
    },
    realPath: (d) => d === "/opt/none" ? null : d === "/bin" ? "/usr/bin" : d,
    quietMs: 20,
  });
  cw.start();
  eq(cw.dirs, ["/usr/bin"]);
  // a copy being written: many events, one hash after the last
  files.set("/usr/bin/x", "den");
  w.push("create", "/usr/bin/x");
  files.set("/usr/bin/x", "denied");
  w.push("modify", "/usr/bin/x");
  w.push("modify", "/usr/bin/x");
  // outside the watched directory (below it, elsewhere), removals and reads: ignored
  files.set("/usr/bin/sub/y", "denied");
  w.push("create", "/usr/bin/sub/y", "/etc/z");
  w.push("remove", "/usr/bin/x");
  w.push("access", "/usr/bin/x");
  // a symlink made after the apply is not followed
  files.set("/usr/bin/x.lnk", "denied");
  w.push("create", "/usr/bin/x.lnk");
  await tick(80);
  eq(matches, [{ path: "/usr/bin/x", sha256: sha, line: 4 }]);
  eq(fs.reads, ["/usr/bin/x"]);
  strictEqual(cw.hashed, 1);
  // another content: hashed, no match
  files.set("/usr/bin/ok", "fine");
  w.push("rename", "/usr/bin/ok");
  await tick(80);
  strictEqual(matches.length, 1);
  strictEqual(cw.hashed, 2);
  cw.stop();
  ok(w.closed);
  eq(errors, []);
});

Deno.test("content watch: at most maxPending paths wait (reported once); a stopped watch hashes nothing", async () => {
  const files = new Map([["/d/a", "a"], ["/d/b", "b"], ["/d/c", "c"]]);
  const fs = memFs(files);
  const w = handWatch();
  const errors: string[] = [];
  const cw = new ContentWatcher({
    dirs: ["/d"],
    denied: new Map([[await sha256Hex(enc("c")), 1]]),
    onMatch: () => {},
    onError: (what, e) => errors.push(`${what}: ${e instanceof Error ? e.message : e}`),
    fs,
    watch: () => w,
    realPath: (d) => d,
    quietMs: 20,
    maxPending: 2,
  });
  cw.start();
  w.push("create", "/d/a", "/d/b", "/d/c", "/d/a");
  await tick(80);
  eq(fs.reads, ["/d/a", "/d/b"]);
  strictEqual(errors.length, 1);
  ok(errors[0].includes("more than 2 changed files waiting"), errors[0]);
  w.push("create", "/d/c");
  cw.stop();
  await tick(60);
  eq(fs.reads, ["/d/a", "/d/b"], "nothing after stop");
});
