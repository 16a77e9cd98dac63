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

/** What a probe needs to know about a path. */
export interface ProbeStat {
  isFile: boolean;
  isDirectory: boolean;
  size: number;
}

/** Read-only view of the file system a probe needs. */
export interface ProbeFs {
  /** Whole file as text; rejects with Deno.errors.NotFound when missing. */
  readText(path: string): Promise<string>;
  /** stat (following symlinks); rejects with Deno.errors.NotFound when missing. */
  stat(path: string): Promise<ProbeStat>;
}

/** The real file system. */
export const hostFs: ProbeFs = {
  readText: (path) => Deno.readTextFile(path),
  stat: async (path) => {
    const st = await Deno.stat(path);
    return { isFile: st.isFile, isDirectory: st.isDirectory, size: st.size };
  },
};

/**
 * A fixture file system from a path → content map. A value of `Error`
 * makes reads of that path reject with it (e.g. PermissionDenied). Every
 * parent of a listed path is a directory; anything else is NotFound.
 */
export function fixtureFs(files: Record<string, string | Error>): ProbeFs {
  const isDir = (path: string) => {
    const p = path.endsWith("/") ? path : `${path}/`;
    return Object.keys(files).some((k) => k.startsWith(p));
  };
  return {
    readText: (path) => {
      const v = files[path];
      if (v instanceof Error) return Promise.reject(v);
      if (v === undefined) {
        if (isDir(path)) return Promise.reject(new Deno.errors.IsADirectory(`fixture: ${path}`));
        return Promise.reject(new Deno.errors.NotFound(`fixture: ${path}`));
      }
      return Promise.resolve(v);
    },
    stat: (path) => {
      const v = files[path];
      if (v instanceof Error) return Promise.reject(v);
      if (v !== undefined) {
        return Promise.resolve({ isFile: true, isDirectory: false, size: v.length });
      }
      if (isDir(path)) return Promise.resolve({ isFile: false, isDirectory: true, size: 0 });
      return Promise.reject(new Deno.errors.NotFound(`fixture: ${path}`));
    },
  };
}

/** A supported result. */
export function supported<T>(value: T): ProbeResult<T> {
  return { status: "supported", value };
}

/** An unsupported result, with the reason (and what to do, where known). */
export function unsupported<T = never>(reason: string): ProbeResult<T> {
  return { status: "unsupported", reason };
}

/** An inconclusive result, with the error that kept the probe from knowing. */
export function unknown<T = never>(error: string): ProbeResult<T> {
  return { status: "unknown", error };
}

/** Short text of a caught error (the message, or the value). */
export function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** true / false / null (unknown) from a probe result. */
export function probeBool(r: ProbeResult<unknown>): boolean | null {
  return r.status === "supported" ? true : r.status === "unsupported" ? false : null;
}

/** One line for a human: the value summary, the reason or the error. */
export function probeDetail(r: ProbeResult<unknown>): string {
  if (r.status === "unsupported") return r.reason;
  if (r.status === "unknown") return r.error;
  return typeof r.value === "object" ? JSON.stringify(r.value) : String(r.value);
}

/**
 * A BTF FUNC query (the shim's btfHasFunc), or null when no shim is
 * available: then symbol-based probes answer "unknown".
 */
export type BtfFuncQuery = ((name: string) => boolean) | null;
