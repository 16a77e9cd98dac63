/**
 * The event file's mode and group (`run --log-file-mode`, `--log-file-group`;
 * docs/telemetry.md, "File sink"): so a log shipper in one group can read
 * the file without root, and nothing more.
 *
 * The mode must keep the agent's own read and write (0600) and may add at
 * most group read and write (0660): others never get anything (events name
 * users, commands and paths), execute, setuid, setgid and sticky bits are
 * refused. The group is a name from /etc/group or a numeric gid (for groups
 * only NSS knows, e.g. from LDAP).
 *
 * @module
 */
import { UsageError } from "../errors.ts";

/** The mode of an event file when nothing is configured. */
export const DEFAULT_EVENT_FILE_MODE = 0o600;

/** What the event file gets: its mode, and its group (null = leave the group alone). */
export interface EventFilePerms {
  mode: number;
  gid: number | null;
}

/** The mode's octal text, e.g. "0640". */
export function octal(mode: number): string {
  return "0" + (mode & 0o7777).toString(8).padStart(3, "0");
}

/**
 * Parse `--log-file-mode`: octal `0600`, `0640`, `0660` (or `0620`), also
 * written `640` or `0o640`. Anything wider than 0660 is refused, naming the
 * option and what is wrong.
 */
export function parseLogFileMode(v: string): number {
  const t = v.trim();
  const m = /^(?:0o?)?([0-7]{3,4})$/i.exec(t);
  const opt = `--log-file-mode "${v}"`;
  if (!m) throw new UsageError(`${opt}: not an octal mode; use 0600, 0640 or 0660`);
  const mode = parseInt(m[1], 8);
  if (mode & 0o7000) {
    throw new UsageError(`${opt}: setuid, setgid and sticky bits are refused on the event file`);
  }
  if (mode & 0o002) {
    throw new UsageError(`${opt}: world-writable is refused; events must not be forged`);
  }
  if (mode & 0o007) {
    throw new UsageError(
      `${opt}: others may not read the event file (events name users, commands and paths); ` +
        `give a group read access instead (0640 with --log-file-group)`,
    );
  }
  if (mode & 0o111) throw new UsageError(`${opt}: execute bits are refused on the event file`);
  if ((mode & 0o600) !== 0o600) {
    throw new UsageError(`${opt}: the owner (the agent) needs read and write (0600 at least)`);
  }
  return mode;
}

/** The largest gid the kernel accepts ((gid_t)-1 means "no change"). */
const MAX_GID = 0xfffffffe;

/**
 * Parse `--log-file-group`: a numeric gid, or a group name looked up in
 * `groupFile` (/etc/group). An unknown name is refused.
 */
export function parseLogFileGroup(v: string, groupFile = "/etc/group"): number {
  const t = v.trim();
  const opt = `--log-file-group "${v}"`;
  if (/^\d+$/.test(t)) {
    const gid = Number(t);
    if (!Number.isSafeInteger(gid) || gid > MAX_GID) {
      throw new UsageError(`${opt}: gid out of range (0..${MAX_GID})`);
    }
    return gid;
  }
  if (!/^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$/.test(t)) {
    throw new UsageError(`${opt}: not a group name or a numeric gid`);
  }
  let text: string;
  try {
    text = Deno.readTextFileSync(groupFile);
  } catch (e) {
    throw new UsageError(
      `${opt}: cannot read ${groupFile} to look the group up (${(e as Error).message}); ` +
        `give the numeric gid instead`,
    );
  }
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length >= 3 && f[0] === t && /^\d+$/.test(f[2])) return Number(f[2]);
  }
  throw new UsageError(
    `${opt}: no such group in ${groupFile}; create it (groupadd --system ${t}) or give a ` +
      `numeric gid (for a group only NSS knows, such as one from LDAP)`,
  );
}

/**
 * The mode and group together, checked against each other and the sink:
 * both apply only to `--log file:PATH`, and a group without group read in
 * the mode would get nothing.
 */
export function eventFilePerms(
  isFile: boolean,
  mode: number | undefined,
  gid: number | undefined,
): EventFilePerms {
  if (!isFile && (mode !== undefined || gid !== undefined)) {
    throw new UsageError(
      `--log-file-mode and --log-file-group apply only to --log file:PATH (events go to stdout)`,
    );
  }
  const m = mode ?? DEFAULT_EVENT_FILE_MODE;
  if (gid !== undefined && (m & 0o060) === 0) {
    throw new UsageError(
      `--log-file-group ${gid} with --log-file-mode ${octal(m)} gives the group nothing; ` +
        `add --log-file-mode 0640`,
    );
  }
  return { mode: m, gid: gid ?? null };
}
