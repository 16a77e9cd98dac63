/**
 * Ownership and mode checks for the control files: the state directory
 * (control_state.json, control_log.jsonl, the lock) and the runtime
 * directory of the control socket. A directory or file that another user
 * could write is refused with a message naming it and the fix, before
 * anything is read from or written to it.
 *
 * @module
 */
import { AegisError } from "../errors.ts";

/** Octal mode as `0755`. */
export function modeString(mode: number | null): string {
  return ((mode ?? 0) & 0o7777).toString(8).padStart(4, "0");
}

/** What a private directory must satisfy. */
export interface PrivateDirRules {
  /** the owner it must have (default: this process's uid, root for the daemon) */
  ownerUid?: number;
  /** mode bits that must be clear (default 0o022: not group/other-writable) */
  forbiddenBits?: number;
  /** what the directory is, for messages ("state directory") */
  what: string;
}

function currentUid(): number {
  return Deno.uid() ?? 0;
}

/**
 * Create `dir` with mode 0700 when it is missing, then check it: a real
 * directory (not a symlink), owned by the expected uid, none of the
 * forbidden mode bits set. Throws UNSAFE_PATH otherwise.
 */
export function ensurePrivateDir(dir: string, rules: PrivateDirRules): void {
  const owner = rules.ownerUid ?? currentUid();
  const forbidden = rules.forbiddenBits ?? 0o022;
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(dir);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new AegisError(
        "UNSAFE_PATH",
        `Cannot check the ${rules.what} "${dir}": ${(e as Error).message}`,
        { cause: e },
      );
    }
    try {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      Deno.chmodSync(dir, 0o700);
    } catch (e2) {
      throw new AegisError(
        "UNSAFE_PATH",
        `Cannot create the ${rules.what} "${dir}": ${(e2 as Error).message}`,
        { cause: e2 },
      );
    }
    st = Deno.lstatSync(dir);
  }
  if (st.isSymlink || !st.isDirectory) {
    throw new AegisError(
      "UNSAFE_PATH",
      `The ${rules.what} "${dir}" is ${
        st.isSymlink ? "a symbolic link" : "not a directory"
      }; it must be a real directory owned by uid ${owner} (mode 0700). Remove it or fix it.`,
    );
  }
  if (st.uid !== owner || ((st.mode ?? 0) & forbidden) !== 0) {
    throw new AegisError(
      "UNSAFE_PATH",
      `The ${rules.what} "${dir}" is owned by uid ${st.uid} with mode ${modeString(st.mode)}; ` +
        `it must be owned by uid ${owner} and not ${
          forbidden & 0o044 ? "accessible" : "writable"
        } by group or others. Fix it with: chown ${owner} ${dir} && chmod 700 ${dir}`,
    );
  }
}

/**
 * Check an existing file inside a private directory: a regular file (not a
 * symlink), owned by the expected uid, not group/other-writable. Missing is
 * fine (false); unsafe throws UNSAFE_PATH.
 */
export function checkPrivateFile(path: string, what: string, ownerUid?: number): boolean {
  const owner = ownerUid ?? currentUid();
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new AegisError(
      "UNSAFE_PATH",
      `Cannot check the ${what} "${path}": ${(e as Error).message}`,
      {
        cause: e,
      },
    );
  }
  if (st.isSymlink || !st.isFile) {
    throw new AegisError(
      "UNSAFE_PATH",
      `The ${what} "${path}" is ${
        st.isSymlink ? "a symbolic link" : "not a regular file"
      }; refusing to use it. Move it away.`,
    );
  }
  if (st.uid !== owner || ((st.mode ?? 0) & 0o022) !== 0) {
    throw new AegisError(
      "UNSAFE_PATH",
      `The ${what} "${path}" is owned by uid ${st.uid} with mode ${modeString(st.mode)}; it must ` +
        `be owned by uid ${owner} and not group/other-writable. Fix it with: ` +
        `chown ${owner} ${path} && chmod 600 ${path}`,
    );
  }
  return true;
}
