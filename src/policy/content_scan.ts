/**
 * The content scan: exec identity by content where the kernel gives none.
 *
 * Where the exec-hash program cannot run (no BPF LSM sleepable programs, or
 * a kernel without IMA for bpf_ima_file_hash; docs/engine.md "Exec identity
 * by content"), the daemon finds the files that carry a [deny_binary_hash]
 * content itself, as the C++ agent does: at every apply it hashes the
 * regular files directly inside the default directories (/usr/bin,
 * /usr/sbin, /usr/local/bin, /usr/local/sbin, /bin, /sbin) and the
 * policy's [scan_paths] — one level, no recursion — and each file whose
 * SHA-256 is denied becomes an inode deny rule (compilePolicy), which
 * refuses to open, map or execute that inode, under every name.
 *
 * What it does not cover (docs/engine.md says so to operators): a copy made
 * elsewhere, or after the scan, until the file shows up in a scanned
 * directory (the daemon watches them: ScanWatcher in daemon/content_watch.ts);
 * a file larger than `maxFileBytes`; more than `maxFiles` files.
 *
 * Symlinks are followed (a name in /usr/bin may point at the real file
 * anywhere); each inode is hashed once, whatever its names.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Policy } from "./model.ts";

/** Scanned at every apply, beside [scan_paths] (the C++ agent's list). */
export const DEFAULT_SCAN_DIRS: readonly string[] = [
  "/usr/bin",
  "/usr/sbin",
  "/usr/local/bin",
  "/usr/local/sbin",
  "/bin",
  "/sbin",
];

/** Default bounds of one scan. */
export const DEFAULT_MAX_FILES = 100_000;
export const DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024;

/** What the scan needs of the file system (tests inject their own). */
export interface ScanFs {
  /** Names in a directory; throws when it cannot be listed. */
  readDir(dir: string): Iterable<string>;
  /** stat() following symlinks; null when it does not exist. */
  stat(path: string): { isFile: boolean; isDirectory: boolean; size: number; id: string } | null;
  /**
   * SHA-256 (hex) of the file and the bytes read; throws when it cannot be
   * read or holds more than `maxBytes` by the time it is read.
   */
  hashFile(
    path: string,
    maxBytes: number,
    sizeHint: number,
  ): Promise<{ sha256: string; bytes: number }>;
  /** lstat(): the name itself is a symlink */
  isSymlink(path: string): boolean;
}

export const denoScanFs: ScanFs = {
  *readDir(dir) {
    for (const e of Deno.readDirSync(dir)) yield e.name;
  },
  stat(path) {
    try {
      const s = Deno.statSync(path);
      return {
        isFile: s.isFile,
        isDirectory: s.isDirectory,
        size: s.size,
        id: `${s.dev}:${s.ino}`,
      };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
      throw e;
    }
  },
  hashFile: hashFileStreaming,
  isSymlink(path) {
    try {
      return Deno.lstatSync(path).isSymlink;
    } catch {
      return false;
    }
  },
};

export interface ScanOptions {
  fs?: ScanFs;
  maxFiles?: number;
  maxFileBytes?: number;
}

/** A file that carries a denied content. */
export interface ContentMatch {
  path: string;
  sha256: string;
  /** the [deny_binary_hash] line that denies it (the rule id) */
  line: number;
}

export interface ContentScanResult {
  /** the directories scanned, in order (defaults, then [scan_paths]) */
  dirs: string[];
  /** regular files hashed (each inode once) */
  hashed: number;
  bytes: number;
  matches: ContentMatch[];
  /** what was not scanned, and why (a missing default directory is not listed) */
  skipped: string[];
  ms: number;
}

/**
 * Hash the regular files directly inside `dirs` (defaults first) and return
 * those whose content is in `denied` (sha256 → its line). Never throws for
 * one file or directory: what could not be read is in `skipped`.
 */
export async function scanContents(
  denied: ReadonlyMap<string, number>,
  extraDirs: readonly string[],
  opts: ScanOptions = {},
): Promise<ContentScanResult> {
  const fs = opts.fs ?? denoScanFs;
  const maxFiles = opts.maxFiles ?? DEFAULT_MAX_FILES;
  const maxBytes = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  const t0 = performance.now();
  const dirs = [...new Set([...DEFAULT_SCAN_DIRS, ...extraDirs])];
  const out: ContentScanResult = { dirs, hashed: 0, bytes: 0, matches: [], skipped: [], ms: 0 };
  if (denied.size === 0) return out;
  const seenDirs = new Set<string>();
  const seen = new Set<string>();
  let full = false;
  // stat() that files an error under `skipped` (undefined: skip this one)
  const statOr = (path: string) => {
    try {
      return fs.stat(path);
    } catch (e) {
      out.skipped.push(`${path}: ${errText(e)}`);
      return undefined;
    }
  };
  for (const dir of dirs) {
    const isDefault = DEFAULT_SCAN_DIRS.includes(dir);
    const st = statOr(dir);
    if (st === undefined) continue;
    if (st === null || !st.isDirectory) {
      if (!isDefault) {
        out.skipped.push(`${dir}: ${st === null ? "does not exist" : "not a directory"}`);
      }
      continue;
    }
    if (seenDirs.has(st.id)) continue; // /bin -> /usr/bin on a merged-/usr system
    seenDirs.add(st.id);
    let names: string[];
    try {
      names = [...fs.readDir(dir)].sort();
    } catch (e) {
      out.skipped.push(`${dir}: ${errText(e)}`);
      continue;
    }
    for (const name of names) {
      const path = dir.endsWith("/") ? dir + name : `${dir}/${name}`;
      const f = statOr(path);
      if (!f || !f.isFile || seen.has(f.id)) continue;
      if (seen.size >= maxFiles) {
        full = true;
        break;
      }
      seen.add(f.id);
      const r = await checkFile(path, f.size, denied, fs, maxBytes);
      if (typeof r === "string") {
        out.skipped.push(r);
        continue;
      }
      out.hashed++;
      out.bytes += r.bytes;
      if (r.match) out.matches.push(r.match);
    }
    if (full) {
      out.skipped.push(`${dir} and after: more than ${maxFiles} files; the rest not scanned`);
      break;
    }
  }
  out.ms = Math.round(performance.now() - t0);
  return out;
}

/**
 * Hash one regular file of `size` bytes: its match (null: not denied) and
 * the bytes read, or why it was not hashed (a string).
 */
export async function checkFile(
  path: string,
  size: number,
  denied: ReadonlyMap<string, number>,
  fs: ScanFs = denoScanFs,
  maxBytes = DEFAULT_MAX_FILE_BYTES,
): Promise<{ match: ContentMatch | null; bytes: number } | string> {
  if (size > maxBytes) return `${path}: ${size} bytes, more than the scan reads (${maxBytes})`;
  let h;
  try {
    h = await fs.hashFile(path, maxBytes, size);
  } catch (e) {
    return `${path}: ${errText(e)}`;
  }
  const line = denied.get(h.sha256);
  return { match: line === undefined ? null : { path, sha256: h.sha256, line }, bytes: h.bytes };
}

/** Read size of the streaming hash: the scan's memory per file. */
const CHUNK = 1 << 20;

/**
 * SHA-256 of a file read in 1 MiB pieces. WebCrypto's digest() takes one
 * buffer: the whole file in memory, and Deno.readFile of large binaries was
 * the slow part (docs/benchmarks.md, "bench/policy/content_scan": 810 MiB peak RSS and
 * ×4.3 the time of sha256sum); node:crypto, built into Deno, hashes
 * incrementally.
 */
export async function hashFileStreaming(
  path: string,
  maxBytes: number,
  sizeHint = CHUNK,
): Promise<{ sha256: string; bytes: number }> {
  const h = createHash("sha256");
  // a small file gets a small buffer (100,000 files: not 100 GiB of zeroed memory)
  const buf = new Uint8Array(Math.min(CHUNK, Math.max(4096, sizeHint + 1)));
  let bytes = 0;
  using f = await Deno.open(path, { read: true });
  for (;;) {
    const n = await f.read(buf);
    if (n === null) break;
    bytes += n;
    if (bytes > maxBytes) throw new Error(`more than the scan reads (${maxBytes} bytes)`);
    h.update(buf.subarray(0, n));
  }
  return { sha256: h.digest("hex"), bytes };
}

/** The scan a policy asks for: its [deny_binary_hash] contents in the defaults and its [scan_paths]. */
export function scanForPolicy(
  p: Pick<Policy, "denyBinaryHash" | "scanPaths">,
  opts: ScanOptions = {},
): Promise<ContentScanResult> {
  return scanContents(deniedContents(p.denyBinaryHash), p.scanPaths.map((e) => e.path), opts);
}

/** The [deny_binary_hash] contents of a policy: sha256 → its first line. */
export function deniedContents(
  list: readonly { sha256: string; line: number }[],
): Map<string, number> {
  const m = new Map<string, number>();
  for (const e of list) if (!m.has(e.sha256)) m.set(e.sha256, e.line);
  return m;
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
