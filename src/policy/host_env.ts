/**
 * The compile environment of this host: rule paths resolved through the file
 * system (bpf/path_rule.ts), cgroup paths under the cgroup v2 mount. The CLI
 * and the daemon compile policies with it; tests pass their own CompileEnv.
 *
 * @module
 */
import { resolveRulePath } from "../bpf/path_rule.ts";
import { cgroup2MountFrom } from "../util/mountinfo.ts";
import type { CompileEnv } from "./compile.ts";

/** The real resolvers: paths through the file system, cgroups under the v2 mount. */
export function hostCompileEnv(): CompileEnv {
  const mount = cgroup2MountFrom(Deno.readTextFileSync("/proc/self/mountinfo"));
  return {
    resolvePath: resolveRulePath,
    resolveCgroup: (path) => {
      if (!mount) return null;
      try {
        return BigInt(Deno.statSync(`${mount}${path.startsWith("/") ? "" : "/"}${path}`).ino!);
      } catch {
        return null;
      }
    },
  };
}
