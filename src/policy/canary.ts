/**
 * `policy apply --canary DURATION [--canary-threshold DENIES_PER_S]`
 * (docs/policy.md, "Canary apply"): apply, watch the rate of operations the
 * rules match (the kernel's per-hook block and audit counters) for the
 * window, and when it goes above the threshold switch back to the policy
 * that was applied before, through the same atomic generation switch as
 * any apply (generations.ts). The daemon runs it for a control-socket
 * request; the CLI runs it on the pins when no daemon runs.
 *
 * The verdict is the average rate since the apply, checked every second
 * from `settle` on (a burst in the first second is not a trend), and at
 * the end of the window. A rollback is refused when another apply
 * replaced the candidate meanwhile (`superseded`): the canary never undoes
 * someone else's policy.
 *
 * @module
 */
import { applyPolicyBytes, type PolicyApplyDeps, type PolicyApplyReport } from "./apply.ts";
import type { PolicyApplyRequest } from "./apply.ts";
import { appliedFile, readRecordedSha } from "./store.ts";
import { sha256Hex } from "../util/bytes.ts";
import { UsageError } from "../errors.ts";

/** Longest canary window: one hour. */
export const MAX_CANARY_SECONDS = 3600;
/** Default threshold: matched operations per second. */
export const DEFAULT_CANARY_THRESHOLD = 1;
/** No verdict before this much of the window has passed (unless the window is shorter). */
export const CANARY_SETTLE_MS = 5000;

/** The policy a rollback applies when there was none before: no rules. */
export const EMPTY_POLICY = "version=1\n";

export interface CanaryOptions {
  windowSeconds: number;
  /** matched operations per second above which the apply is rolled back */
  thresholdPerS: number;
}

/** How the watch went. */
export interface CanaryVerdict {
  /** the rate went above the threshold */
  crossed: boolean;
  /** operations the rules matched (denied, signalled or audited) during the watch */
  denies: number;
  elapsed_ms: number;
  /** denies per second over elapsed_ms */
  rate_per_s: number;
}

export interface WatchDeps {
  /** the kernel's count of matched operations (monotonic) */
  count: () => number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** between two checks (default 1000 ms) */
  intervalMs?: number;
  settleMs?: number;
  /** after each apply (the candidate's, the rollback's): the daemon announces it */
  onApplied?: (report: PolicyApplyReport) => void;
}

/** Check the options (usage errors name the option). */
export function checkCanaryOptions(o: CanaryOptions): void {
  if (!Number.isSafeInteger(o.windowSeconds) || o.windowSeconds < 1) {
    throw new UsageError(`--canary: ${o.windowSeconds} is not a whole number of seconds >= 1`);
  }
  if (o.windowSeconds > MAX_CANARY_SECONDS) {
    throw new UsageError(`--canary: at most ${MAX_CANARY_SECONDS} s (1h), got ${o.windowSeconds}`);
  }
  if (!Number.isFinite(o.thresholdPerS) || o.thresholdPerS < 0 || o.thresholdPerS > 1e9) {
    throw new UsageError(
      `--canary-threshold: ${o.thresholdPerS} is not a number of denies per second from 0 to 1e9`,
    );
  }
}

/** Watch the counter for the window; stops early when the threshold is crossed. */
export async function watchDenyRate(o: CanaryOptions, w: WatchDeps): Promise<CanaryVerdict> {
  const now = w.now ?? Date.now;
  const sleep = w.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const windowMs = o.windowSeconds * 1000;
  const settle = Math.min(w.settleMs ?? CANARY_SETTLE_MS, windowMs);
  const start = w.count();
  const t0 = now();
  for (;;) {
    const left = windowMs - (now() - t0);
    if (left > 0) await sleep(Math.min(w.intervalMs ?? 1000, left));
    const elapsed = Math.max(1, now() - t0);
    const denies = Math.max(0, w.count() - start);
    const rate = denies / (elapsed / 1000);
    const verdict = { denies, elapsed_ms: elapsed, rate_per_s: Math.round(rate * 1000) / 1000 };
    if (elapsed >= settle && rate > o.thresholdPerS) return { crossed: true, ...verdict };
    if (elapsed >= windowMs) return { crossed: false, ...verdict };
  }
}

/** The canary's outcome, in the apply's reply and the `policy_canary` event. */
export interface CanaryResult extends CanaryVerdict {
  window_s: number;
  threshold_per_s: number;
  /**
   * kept: the candidate stays; rolled_back; superseded: another apply came
   * meanwhile (not rolled back); rollback_failed: the rollback's apply was
   * refused (the candidate stays; `error` says why)
   */
  outcome: "kept" | "rolled_back" | "superseded" | "rollback_failed";
  /** the rollback's generation switch */
  rollback: { file: string; sha256: string; generation: { from: number; to: number } } | null;
  /** rollback_failed: the rollback's error */
  error?: string;
}

/** The applied policy's body now (null: none applied), what a rollback goes back to. */
function appliedNow(stateDir: string): { file: string; bytes: Uint8Array } | null {
  const file = appliedFile(stateDir);
  try {
    return { file, bytes: Deno.readFileSync(file) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Apply `req`, watch, and roll back to what was applied before when the
 * rate goes above the threshold (nothing applied before: to
 * {@link EMPTY_POLICY}, no rules).
 */
export async function applyWithCanary(
  deps: PolicyApplyDeps,
  req: PolicyApplyRequest,
  o: CanaryOptions,
  w: WatchDeps,
): Promise<{ report: PolicyApplyReport; canary: CanaryResult }> {
  checkCanaryOptions(o);
  if (req.dryRun) throw new UsageError("--canary watches an applied policy: not with --dry-run");
  if (req.reset) {
    throw new UsageError(
      "--canary cannot roll back --reset (the live rules it drops are gone): apply without --reset",
    );
  }
  const previous = appliedNow(deps.stateDir);
  const report = await applyPolicyBytes(deps, req);
  w.onApplied?.(report);
  const verdict = await watchDenyRate(o, w);
  const base = { ...verdict, window_s: o.windowSeconds, threshold_per_s: o.thresholdPerS };
  if (!verdict.crossed) return { report, canary: { ...base, outcome: "kept", rollback: null } };
  if (readRecordedSha(deps.stateDir) !== (report.body_sha256 ?? report.sha256)) {
    return { report, canary: { ...base, outcome: "superseded", rollback: null } };
  }
  const back = previous ??
    { file: "(no policy: empty)", bytes: new TextEncoder().encode(EMPTY_POLICY) };
  // the previous body was verified when it was applied: no signature check, no counter
  let rb: PolicyApplyReport;
  try {
    rb = await applyPolicyBytes(deps, { file: back.file, bytes: back.bytes });
  } catch (e) {
    // a failed apply changes nothing: the candidate still enforces
    const error = e instanceof Error ? e.message : String(e);
    return { report, canary: { ...base, outcome: "rollback_failed", rollback: null, error } };
  }
  w.onApplied?.(rb);
  return {
    report,
    canary: {
      ...base,
      outcome: "rolled_back",
      rollback: {
        file: back.file,
        sha256: await sha256Hex(new Uint8Array(back.bytes)),
        generation: rb.generation!,
      },
    },
  };
}
