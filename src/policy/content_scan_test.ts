import { deepStrictEqual as eq, ok, rejects, strictEqual } from "node:assert/strict";
import {
  checkFile,
  DEFAULT_SCAN_DIRS,
  deniedContents,
  denoScanFs,
  hashFileStreaming,
  scanContents,
  type ScanFs,
} from "./content_scan.ts";
import { sha256Hex } from "../util/bytes.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** An in-memory tree: files (content), dirs, symlinks (target path), unreadable files. */
function fakeFs(
  tree: Record<string, string | { dir: true } | { link: string } | { unreadable: string }>,
): ScanFs & { reads: string[] } {
  const reads: string[] = [];
  const follow = (p: string): string => {
    for (let i = 0; i < 10; i++) {
      const n = tree[p];
      if (n && typeof n === "object" && "link" in n) p = n.link;
      else return p;
    }
    throw new Error(`${p}: too many levels of symbolic links`);
  };
  return {
    reads,
    *readDir(dir) {
      const d = follow(dir);
      for (const k of Object.keys(tree)) {
        if (k.startsWith(d + "/") && !k.slice(d.length + 1).includes("/")) {
          yield k.slice(d.length + 1);
        }
      }
    },
    stat(path) {
      const p = follow(path);
      const n = tree[p];
      if (n === undefined) return null;
      if (typeof n === "object" && "dir" in n) {
        return { isFile: false, isDirectory: true, size: 0, id: p };
      }
      const body = typeof n === "string" ? n : (n as { unreadable: string }).unreadable;
      return { isFile: true, isDirectory: false, size: body.length, id: p };
    },
    async hashFile(path) {
      const p = follow(path);
      const n = tree[p];
      reads.push(p);
      if (typeof n === "object" && "unreadable" in n) {
        throw new Deno.errors.PermissionDenied("EACCES");
      }
      return { sha256: await sha256Hex(enc(n as string)), bytes: (n as string).length };
    },
    isSymlink: (p) => typeof tree[p] === "object" && "link" in (tree[p] as object),
  };
}

Deno.test("content scan: denied contents found in the default directories and [scan_paths], one level deep, each inode once", async () => {
  const nc = await sha256Hex(enc("netcat"));
  const miner = await sha256Hex(enc("miner"));
  const fs = fakeFs({
    "/usr": { dir: true },
    "/usr/bin": { dir: true },
    "/usr/bin/ls": "ls",
    "/usr/bin/nc.openbsd": "netcat",
    "/usr/bin/nc": { link: "/usr/bin/nc.openbsd" }, // two names, one inode: hashed once
    "/usr/bin/sub": { dir: true },
    "/usr/bin/sub/deep": "miner", // not recursive
    "/bin": { link: "/usr/bin" }, // merged /usr: scanned once
    "/opt/tools": { dir: true },
    "/opt/tools/x": "miner",
    "/opt/tools/pipe": { link: "/nowhere" }, // dangling: ignored
  });
  const r = await scanContents(
    new Map([[nc, 3], [miner, 4]]),
    ["/opt/tools", "/opt/missing", "/usr/bin/ls"],
    { fs },
  );
  eq(r.dirs, [...DEFAULT_SCAN_DIRS, "/opt/tools", "/opt/missing", "/usr/bin/ls"]);
  eq(r.matches.map((m) => [m.path, m.line]), [["/usr/bin/nc", 3], ["/opt/tools/x", 4]]);
  strictEqual(r.matches[0].sha256, nc);
  strictEqual(r.hashed, 3, "ls, nc (once for two names), x");
  eq(fs.reads.sort(), ["/opt/tools/x", "/usr/bin/ls", "/usr/bin/nc.openbsd"]);
  strictEqual(r.bytes, "ls".length + "netcat".length + "miner".length);
  // a missing default directory says nothing; a missing or wrong [scan_paths] entry is named
  eq(r.skipped, ["/opt/missing: does not exist", "/usr/bin/ls: not a directory"]);
});

Deno.test("content scan: bounded — too large, unreadable, more than maxFiles — and nothing read without a denied content", async () => {
  const fs = fakeFs({
    "/usr/bin": { dir: true },
    "/usr/bin/a": "a",
    "/usr/bin/big": "x".repeat(100),
    "/usr/bin/c": { unreadable: "c" },
    "/usr/bin/d": "d",
  });
  const denied = new Map([[await sha256Hex(enc("d")), 7]]);
  const r = await scanContents(denied, [], { fs, maxFileBytes: 10, maxFiles: 3 });
  strictEqual(r.hashed, 1, "a only: big too large, c unreadable, d beyond maxFiles");
  eq(r.matches, []);
  ok(r.skipped[0].startsWith("/usr/bin/big: 100 bytes, more than the scan reads (10)"));
  ok(r.skipped[1].startsWith("/usr/bin/c: "), r.skipped[1]);
  ok(r.skipped[2].includes("more than 3 files"), r.skipped[2]);
  // the same files with room: d is found
  const all = await scanContents(denied, [], { fs, maxFileBytes: 10 });
  eq(all.matches.map((m) => m.path), ["/usr/bin/d"]);
  // no denied content: nothing is read
  const none = fakeFs({ "/usr/bin": { dir: true }, "/usr/bin/a": "a" });
  strictEqual((await scanContents(new Map(), [], { fs: none })).hashed, 0);
  eq(none.reads, []);
});

Deno.test("content scan on the real file system: a copy in a scanned directory is found, its line is the first for that digest", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/tool`, "#!/bin/sh\necho denied\n");
    await Deno.writeTextFile(`${dir}/other`, "#!/bin/sh\necho fine\n");
    const sha = await sha256Hex(enc("#!/bin/sh\necho denied\n"));
    const denied = deniedContents([{ sha256: sha, line: 5 }, { sha256: sha, line: 9 }]);
    eq([...denied], [[sha, 5]]);
    // the default directories left out: the host's /usr/bin is not this test's business
    const fs: ScanFs = {
      ...denoScanFs,
      stat: (p) => DEFAULT_SCAN_DIRS.includes(p) ? null : denoScanFs.stat(p),
    };
    const r = await scanContents(denied, [dir], { fs });
    eq(r.matches, [{ path: `${dir}/tool`, sha256: sha, line: 5 }]);
    strictEqual(r.hashed, 2);
    eq(r.skipped, []);
    // one file
    const one = await checkFile(`${dir}/other`, 20, denied);
    eq(one, { match: null, bytes: 20 });
    // the streaming hash is the digest of the whole file (pieces of 1 MiB), and bounded
    const big = new Uint8Array(3 * 1024 * 1024 + 5).map((_, i) => i % 251);
    await Deno.writeFile(`${dir}/big`, big);
    eq(await hashFileStreaming(`${dir}/big`, 1 << 30), {
      sha256: await sha256Hex(big),
      bytes: big.length,
    });
    await rejects(() => hashFileStreaming(`${dir}/big`, 1 << 20), /more than the scan reads/);
    ok(String(await checkFile(`${dir}/gone`, 1, denied)).startsWith(`${dir}/gone: `));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
