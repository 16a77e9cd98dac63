/**
 * Probe: the running kernel's release (/proc/sys/kernel/osrelease).
 *
 * @module
 */
import { errorText, type ProbeFs, type ProbeResult, unknown } from "../probe.ts";

export const OSRELEASE_PATH = "/proc/sys/kernel/osrelease";

export interface KernelVersion {
  /** The full release string, e.g. "6.12.38+deb13-amd64". */
  release: string;
  major: number;
  minor: number;
  patch: number;
}

/** Parse "major.minor[.patch][suffix]"; null when it does not start that way. */
export function parseKernelRelease(release: string): KernelVersion | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(release.trim());
  if (!m) return null;
  return { release: release.trim(), major: +m[1], minor: +m[2], patch: m[3] ? +m[3] : 0 };
}

/** Is `v` at least major.minor? */
export function kernelAtLeast(v: KernelVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

export async function probeKernelVersion(fs: ProbeFs): Promise<ProbeResult<KernelVersion>> {
  let text: string;
  try {
    text = await fs.readText(OSRELEASE_PATH);
  } catch (e) {
    return unknown(`cannot read ${OSRELEASE_PATH}: ${errorText(e)} (is /proc mounted?)`);
  }
  const v = parseKernelRelease(text);
  if (!v) return unknown(`${OSRELEASE_PATH} holds ${JSON.stringify(text.trim())}, not a version`);
  return { status: "supported", value: v };
}
