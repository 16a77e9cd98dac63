/**
 * Crash-safe file replacement and the anti-rollback counter of signed policy
 * bundles (docs/policy.md).
 *
 * {@link writeFileAtomic}: the bytes go to a temporary file in the same
 * directory (so the rename stays on one filesystem), are fsynced, the
 * temporary file is renamed over the target, then the directory is fsynced so
 * the rename itself survives a crash. After a crash the target holds either
 * the old or the new content, never a mix; a left-over `.NAME.tmp-*` file is
 * harmless and overwritten by nobody (each writer uses a fresh random name).
 *
 * Directory fsync: Linux lets a directory be opened read-only and fsynced;
 * Deno's `Deno.openSync(dir, { read: true })` + `syncSync()` does exactly
 * that. A filesystem that refuses fsync on a directory (EINVAL/ENOTSUP on some
 * network or FUSE filesystems) is tolerated: the data itself is synced, only
 * the durability of the rename is then up to the filesystem.
 *
 * @module
 */
import { AegisError } from "../errors.ts";
import { readTextFileCapped } from "../util/read_file.ts";

/** Largest policy version counter file read (it holds one small JSON object). */
const MAX_COUNTER_BYTES = 4096;

/** Anti-rollback counter file content: `{"policy_version": N}`. */
export interface CounterState {
  policy_version: number;
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  if (i < 0) return ".";
  if (i === 0) return "/";
  return path.slice(0, i);
}

function baseOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

function randomSuffix(): string {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** fsync a directory; filesystems that cannot fsync directories are tolerated. */
export function syncDir(dir: string): void {
  let f: Deno.FsFile | undefined;
  try {
    f = Deno.openSync(dir, { read: true });
    f.syncSync();
  } catch (e) {
    // EINVAL / ENOTSUP: the filesystem does not support fsync on directories.
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) throw e;
  } finally {
    f?.close();
  }
}

/**
 * Replace `path` with `bytes` atomically (temp in the same dir, write, fsync,
 * chmod, rename, fsync dir). The file gets `mode` exactly (not masked by the
 * umask). On failure the temporary file is removed and the target untouched.
 */
export function writeFileAtomic(path: string, bytes: Uint8Array, mode = 0o644): void {
  const dir = dirOf(path);
  const tmp = `${dir}/.${baseOf(path)}.tmp-${randomSuffix()}`;
  let f: Deno.FsFile | undefined;
  try {
    f = Deno.openSync(tmp, { write: true, createNew: true, mode });
    let off = 0;
    while (off < bytes.length) off += f.writeSync(bytes.subarray(off));
    Deno.chmodSync(tmp, mode);
    f.syncSync();
    f.close();
    f = undefined;
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      f?.close();
    } catch { /* already closed */ }
    try {
      Deno.removeSync(tmp);
    } catch { /* not created or already renamed */ }
    throw new AegisError(
      "ATOMIC_WRITE_FAILED",
      `Could not write "${path}" atomically: ${(e as Error).message}. ` +
        `Check that the directory "${dir}" exists and is writable.`,
      { cause: e },
    );
  }
  syncDir(dir);
}

/**
 * Read the anti-rollback counter: the highest `policy_version` ever accepted.
 * A missing file means no bundle was accepted yet: 0. A corrupt file is an
 * error (never silently reset to 0, which would re-open rollback).
 */
export function readCounter(path: string): number {
  let text: string;
  try {
    text = readTextFileCapped(path, {
      maxBytes: MAX_COUNTER_BYTES,
      what: "policy version counter",
      code: "COUNTER_READ_FAILED",
    });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || (e as Error).cause instanceof Deno.errors.NotFound) {
      return 0;
    }
    throw new AegisError(
      "COUNTER_READ_FAILED",
      `Could not read the policy version counter "${path}": ${(e as Error).message}`,
      { cause: e },
    );
  }
  let v: unknown;
  try {
    v = (JSON.parse(text) as { policy_version?: unknown }).policy_version;
  } catch (e) {
    throw new AegisError(
      "COUNTER_CORRUPT",
      `The policy version counter "${path}" is not JSON: ${(e as Error).message}. ` +
        `Restore it (content {"policy_version": N}) rather than deleting it: ` +
        `deleting it allows older bundles to be applied again.`,
      { cause: e },
    );
  }
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new AegisError(
      "COUNTER_CORRUPT",
      `The policy version counter "${path}" has no valid "policy_version" ` +
        `(found ${JSON.stringify(v)}); expected a non-negative integer. ` +
        `Restore it rather than deleting it: deleting it allows older bundles again.`,
    );
  }
  return v;
}

/** Store the anti-rollback counter atomically (mode 0600). */
export function writeCounter(path: string, policyVersion: number): void {
  if (!Number.isSafeInteger(policyVersion) || policyVersion < 0) {
    throw new AegisError(
      "COUNTER_INVALID",
      `Refusing to store policy version ${policyVersion}: not a non-negative integer.`,
    );
  }
  const state: CounterState = { policy_version: policyVersion };
  writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(state) + "\n"), 0o600);
}
