/**
 * The emergency lock: an exclusive flock(2) on `<stateDir>/control.lock`,
 * so two operators (CLI processes, the daemon) never toggle at once. The
 * kernel drops the lock when its holder dies, so a crash never leaves a
 * stale lock behind.
 *
 * Deno's flock call blocks; the wait is raced against a timer. When the
 * timer wins, the pending acquisition is left to finish in the background
 * and its lock is released and closed the moment it is granted.
 *
 * @module
 */
import { AegisError } from "../errors.ts";
import { checkPrivateFile } from "./perms.ts";

/** Default wait for the lock. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5_000;

/** A held lock; release() is safe to call twice. */
export interface HeldLock {
  release(): void;
}

/** Acquire the exclusive lock on `path` within `timeoutMs`, or throw EMERGENCY_LOCKED. */
export async function acquireLock(
  path: string,
  timeoutMs: number,
  ownerUid?: number,
): Promise<HeldLock> {
  checkPrivateFile(path, "emergency lock file", ownerUid);
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
  } catch (e) {
    throw new AegisError(
      "EMERGENCY_LOCK_FAILED",
      `Cannot open the emergency lock file "${path}": ${(e as Error).message}`,
      { cause: e },
    );
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const granted: Promise<true | Error> = f.lock(true).then(
    () => true as const,
    (e) => e instanceof Error ? e : new Error(String(e)),
  );
  const expired = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const got = await Promise.race([granted, expired]);
  clearTimeout(timer);
  if (got === "timeout") {
    // the flock call cannot be cancelled: when it is granted later, let go at once
    granted.then((r) => {
      if (r === true) {
        try {
          f.unlockSync();
        } catch { /* close releases it */ }
      }
      f.close();
    });
    throw new AegisError(
      "EMERGENCY_LOCKED",
      `another operator holds the emergency lock ("${path}"); waited ${timeoutMs} ms. ` +
        `Check who runs "aegisbpf emergency-*" now, then try again.`,
    );
  }
  if (got !== true) {
    f.close();
    throw new AegisError(
      "EMERGENCY_LOCK_FAILED",
      `Cannot lock "${path}": ${got.message}`,
      { cause: got },
    );
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        f.unlockSync();
      } catch { /* close releases it */ }
      f.close();
    },
  };
}
