/**
 * `policy apply FILE --canary DURATION [--canary-threshold DENIES_PER_S]`:
 * the daemon runs the watch for a control-socket request (and emits the
 * `policy_canary` event); without a daemon this process runs it on the
 * pins (src/policy/canary.ts; docs/policy.md, "Canary apply"). A crossed
 * threshold exits 1 with CANARY_ROLLED_BACK, CANARY_SUPERSEDED (another
 * apply came meanwhile) or CANARY_ROLLBACK_FAILED, the report and the
 * canary in the error's details.
 *
 * @module
 */
import { AegisError, UsageError } from "../errors.ts";
import { literal, log, out, outJson, writeStderr } from "../log.ts";
import type { PolicyApplyReport, PolicyApplyRequest } from "../policy/apply.ts";
import {
  applyWithCanary,
  type CanaryOptions,
  type CanaryResult,
  checkCanaryOptions,
  DEFAULT_CANARY_THRESHOLD,
  MAX_CANARY_SECONDS,
} from "../policy/canary.ts";
import { PolicyRejectedError } from "../policy/store.ts";
import { totalMatches } from "../metrics/render.ts";
import type { RuleVerification } from "../proof/verify.ts";
import { parseDuration } from "../util/duration.ts";
import { daemonOrLocal } from "./daemon_or_local.ts";
import { applyBody, openLocal, printApplyReport } from "./policy.ts";

/** The options as given (usage errors name the option and the value). */
export function canaryOptions(window?: string, threshold?: string): CanaryOptions {
  if (window === undefined) throw new UsageError("--canary-threshold goes with --canary");
  const windowSeconds = parseDuration(window, MAX_CANARY_SECONDS, "--canary");
  let thresholdPerS = DEFAULT_CANARY_THRESHOLD;
  if (threshold !== undefined) {
    if (!/^\d{1,10}(\.\d{1,6})?$/.test(threshold)) {
      throw new UsageError(
        `--canary-threshold "${threshold}": a number of denies per second, e.g. 0, 2 or 0.5`,
      );
    }
    thresholdPerS = Number(threshold);
  }
  const o = { windowSeconds, thresholdPerS };
  checkCanaryOptions(o);
  return o;
}

type Reply = PolicyApplyReport & { canary: CanaryResult; verification?: RuleVerification | null };

/** Apply with a canary, through the daemon when it runs, else on the pins. */
export async function applyFileWithCanary(
  req: PolicyApplyRequest,
  o: CanaryOptions,
  json?: true,
): Promise<void> {
  if (!json) {
    writeStderr(
      `applying ${req.file}, then watching the deny rate for ${o.windowSeconds} s ` +
        `(threshold ${o.thresholdPerS}/s)\n`,
    );
  }
  const { value: r, via } = await daemonOrLocal<Reply>(
    "POST",
    "/policy/apply",
    { ...applyBody(req), canary: { window_s: o.windowSeconds, threshold_per_s: o.thresholdPerS } },
    async () => {
      using local = await openLocal();
      try {
        const hooks = local.maps("aegis_hook_stats");
        const { report, canary } = await applyWithCanary(local.applyDeps, req, o, {
          count: () => Number(totalMatches(hooks)),
        });
        // no daemon: no event stream; the outcome is logged (and printed below)
        log("policy").info(literal(`policy canary ${canary.outcome}: ${req.file}`), { canary });
        return { ...report, canary };
      } catch (e) {
        if (e instanceof PolicyRejectedError) { for (const i of e.issues) writeStderr(`${i}\n`); }
        throw e;
      }
    },
  );
  for (const w of r.warnings) writeStderr(`warning: ${w}\n`);
  const c = r.canary;
  if (!json) {
    printApplyReport(req, r);
    out(
      `canary: ${c.denies} denies in ${(c.elapsed_ms / 1000).toFixed(1)} s = ${c.rate_per_s}/s ` +
        `(threshold ${c.threshold_per_s}/s): ${c.outcome.replace("_", " ")}` +
        (c.rollback
          ? `, back to ${c.rollback.file} (generation ${c.rollback.generation.from} -> ` +
            `${c.rollback.generation.to})`
          : ""),
    );
  }
  if (c.outcome === "kept") {
    if (json) outJson({ ...r, via });
    return;
  }
  const above = `${req.file}: ${c.rate_per_s} denies/s is above the canary threshold ` +
    `${c.threshold_per_s}/s`;
  const [code, message] = c.outcome === "rolled_back"
    ? ["CANARY_ROLLED_BACK", `${above}; rolled back to ${c.rollback?.file}`]
    : c.outcome === "superseded"
    ? ["CANARY_SUPERSEDED", `${above}, but another apply replaced it meanwhile: not rolled back`]
    : [
      "CANARY_ROLLBACK_FAILED",
      `${above}, and the rollback was refused (${c.error}): ${req.file} is still applied; ` +
      `run "aegisbpf policy rollback" or apply a fixed policy`,
    ];
  const e = new AegisError(code, message);
  throw Object.assign(e, { details: { ...r, via } });
}
