/**
 * Durations on the command line, one grammar for every flag that takes one
 * (`block add --ttl`, `policy sign --expires-in`): a whole number with an
 * optional unit s, m, h or d ("30s", "10m", "2h", "30d"; a bare number is
 * seconds). docs/cli.md lists the flags.
 *
 * @module
 */
import { UsageError } from "../errors.ts";

const UNIT_SECONDS = { "": 1, s: 1, m: 60, h: 3600, d: 86400 } as const;

/**
 * Seconds of `text`, from 1 to `maxSeconds`; a UsageError naming `flag`
 * (when given) and the accepted forms otherwise.
 */
export function parseDuration(text: string, maxSeconds: number, flag?: string): number {
  const what = flag ? `${flag} "${text}"` : `duration "${text}"`;
  const m = /^(\d{1,9})([smhd]?)$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `Invalid ${what}: write a whole number with s, m, h or d (30s, 10m, 2h, 1d)`,
    );
  }
  const s = Number(m[1]) * UNIT_SECONDS[m[2] as keyof typeof UNIT_SECONDS];
  if (s < 1 || s > maxSeconds) {
    const max = maxSeconds % 86400 === 0 ? `${maxSeconds / 86400} days` : `${maxSeconds} s`;
    throw new UsageError(`Invalid ${what}: from 1 second to ${max}`);
  }
  return s;
}
