/**
 * Probe result type: the cilium/ebpf "features" tri-state. A probe never
 * changes the host; each takes the file system it reads as a parameter so
 * it can be tested with fixtures.
 *
 * @module
 */

export type ProbeResult<T = true> =
  | { status: "supported"; value: T }
  | { status: "unsupported"; reason: string }
  | { status: "unknown"; error: string };

/** Read-only view of the file system a probe needs. */
export interface ProbeFs {
  readText(path: string): Promise<string>;
}

/** The real file system. */
export const hostFs: ProbeFs = {
  readText: (path) => Deno.readTextFile(path),
};

/** A fixture file system from a path → content map (missing = NotFound). */
export function fixtureFs(files: Record<string, string>): ProbeFs {
  return {
    readText: (path) => {
      const v = files[path];
      if (v === undefined) return Promise.reject(new Deno.errors.NotFound(`fixture: ${path}`));
      return Promise.resolve(v);
    },
  };
}
