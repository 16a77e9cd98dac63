/**
 * The content scan (src/policy/content_scan.ts) as the daemon runs it at an
 * apply on a kernel without IMA hashing, beside a floor measured in the
 * same run: `sha256sum` (GNU coreutils, native) over the same files.
 *
 *  1. what an apply scans by default: the six default directories;
 *  2. all of /usr: every directory under it as a [scan_paths] entry (the
 *     fill rate the issue asks for: files/s, MB/s).
 *
 * Memory: the scan keeps no hash per file (only the matches, one inode rule
 * each in the kernel map); it holds a buffer of at most 1 MiB for the file
 * being hashed and a set of the inodes seen. Printed: RSS at start, and the
 * peak RSS (VmHWM) after each row (the second includes this benchmark's own
 * list of 100,000 paths for the floor).
 *
 * The page cache is warm for both (each is run once to warm it); cold-cache
 * numbers depend on the disk, not on the agent.
 *
 * Usage: deno run -A bench/policy/content_scan_bench.ts [ROOT=/usr]
 *
 * @module
 */
import { DEFAULT_SCAN_DIRS, scanContents } from "../../src/policy/content_scan.ts";
import { out } from "../../src/log.ts";

const root = Deno.args[0] ?? "/usr";
// a content no file has: every file is hashed, nothing matches
const denied = new Map([["0".repeat(63) + "1", 1]]);

function dirsUnder(top: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    out.push(d);
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(d)];
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory && !e.isSymlink) walk(`${d}/${e.name}`);
  };
  walk(top);
  return out;
}

function kib(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(
    Deno.readTextFileSync("/proc/self/status"),
  );
  return m ? Number(m[1]) : NaN;
}

/** The files the scan hashes (same order of directories), for the floor. */
function filesOf(dirs: string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const d of dirs) {
    let names: string[];
    try {
      names = [...Deno.readDirSync(d)].map((e) => e.name).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      const p = `${d}/${n}`;
      try {
        const s = Deno.statSync(p);
        const id = `${s.dev}:${s.ino}`;
        if (!s.isFile || seen.has(id) || s.size > 256 * 1024 * 1024) continue;
        seen.add(id);
        out.push(p);
      } catch { /* dangling */ }
    }
  }
  return out;
}

async function floor(files: string[]): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < files.length; i += 500) {
    const o = await new Deno.Command("sha256sum", {
      args: ["--", ...files.slice(i, i + 500)],
      stdout: "null",
      stderr: "null",
    }).output();
    if (!o.success && o.code !== 1) throw new Error(`sha256sum exited ${o.code}`);
  }
  return performance.now() - t0;
}

async function row(label: string, extra: string[]): Promise<void> {
  await scanContents(denied, extra); // warm the page cache
  const r = await scanContents(denied, extra);
  const files = filesOf(r.dirs);
  const f = await floor(files);
  const s = r.ms / 1000;
  out(
    `${label.padEnd(22)} ${String(r.hashed).padStart(7)} files ${
      (r.bytes / 2 ** 20).toFixed(0).padStart(6)
    } MiB  ${s.toFixed(2).padStart(7)} s  ${(r.hashed / s).toFixed(0).padStart(7)} files/s ${
      (r.bytes / 2 ** 20 / s).toFixed(0).padStart(5)
    } MiB/s  sha256sum ${(f / 1000).toFixed(2)} s  ratio x${
      (r.ms / f).toFixed(2)
    }  skipped ${r.skipped.length}  peak RSS ${(kib("VmHWM") / 1024).toFixed(0)} MiB`,
  );
}

const rss0 = kib("VmRSS");
out(`content scan (deno ${Deno.version.deno}), warm page cache, one run each after a warm-up`);
await row("default directories", []);
await row(`all of ${root}`, dirsUnder(root).filter((d) => !DEFAULT_SCAN_DIRS.includes(d)));
out(`RSS at start ${(rss0 / 1024).toFixed(0)} MiB; peak RSS is the high-water mark so far`);
