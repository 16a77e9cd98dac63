/**
 * `aegisbpf health [--json] [--require-enforce]` answered by a running
 * daemon before the argument parser and the command files are loaded: a
 * readiness probe that execs the CLI pays for the runtime, the health schema
 * and one request on the control socket (docs/benchmarks.md, bench/cli).
 * Any other argument, no daemon, or an answer that is not a health verdict
 * leaves it to the full CLI (src/cli/health.ts), which asks again, probes
 * the host when no daemon runs and reports errors its usual way.
 *
 * @module
 */
import type { HealthVerdict } from "../posture/health.ts";
import { out, outJson } from "../stdio.ts";

/** The flags of a `health` call this path answers, or null for any other argv. */
export function readinessFlags(
  argv: readonly string[],
): { json: boolean; requireEnforce: boolean } | null {
  if (argv[0] !== "health") return null;
  const seen = new Set<string>();
  for (const a of argv.slice(1)) {
    if ((a !== "--json" && a !== "--require-enforce") || seen.has(a)) return null;
    seen.add(a);
  }
  return { json: seen.has("--json"), requireEnforce: seen.has("--require-enforce") };
}

/** The exit code after the daemon answered `health`, or null: run the full CLI. */
export async function readinessAnswer(argv: readonly string[]): Promise<number | null> {
  const flags = readinessFlags(argv);
  if (flags === null) return null;
  const { daemonHealth } = await import("./daemon_or_local.ts");
  let h: HealthVerdict | null;
  try {
    h = await daemonHealth(flags.requireEnforce);
  } catch {
    return null;
  }
  if (h === null) return null;
  if (flags.json) outJson(h.body);
  else printHealth(h);
  return h.healthy ? 0 : 1;
}

/** The health verdict for a person; `details` adds the reasons and remedies. */
export function printHealth(h: HealthVerdict, details = true): void {
  const b = h.body;
  out(`${b.ok ? "healthy" : "NOT healthy"}${b.require_enforce ? " (require enforce)" : ""}`);
  out(`agent:           ${b.daemon_running ? "running" : "not running"}`);
  out(`runtime_state:   ${b.runtime_state ?? "none"}`);
  out(`capability:      ${b.capability} (mode ${b.mode}, engine ${b.engine_mode})`);
  out(`enforce_capable: ${b.enforce_capable}`);
  out(
    `bpf object:      ${b.bpf_object_path}, ${
      !b.bpf_object_found ? "MISSING" : b.bpf_hash_verified ? "SHA-256 verified" : "HASH MISMATCH"
    }`,
  );
  out(
    `emergency:       ${
      b.emergency_disable_active === null
        ? "unknown"
        : b.emergency_disable_active
        ? "ACTIVE"
        : "off"
    }`,
  );
  if (!details) return;
  for (const r of b.reasons) out(`- ${r}`);
  for (const x of b.blockers) out(`  remedy for ${x.code}: ${x.remedy}`);
}
