/**
 * Control-socket routes for policies (docs/control.md: mutations only on the
 * root-only unix socket), mounted at "/policy":
 *   POST   /policy/apply {file, policy_b64, sha256?, require_signature?,
 *                         dry_run?, reset?, no_rollback?, canary?} → PolicyApplyReport
 *                         (+ `canary`: the watch's outcome, policy/canary.ts; the
 *                         reply comes when the window is over or the apply rolled back)
 *   GET    /policy/show                        → PolicyShow
 * Thin: the work is in applyPolicyBytes (policy/apply.ts), which the CLI
 * calls directly when no daemon runs. The caller handed to onApplied and
 * onRefused is the socket peer as the kernel reported it (caller.ts), never
 * a client claim. Errors: route_errors.ts.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { callerOf, type ControlCaller } from "./caller.ts";
import { ControlHttpError, readJsonBody, validate } from "./app.ts";
import { routeErrors } from "./route_errors.ts";
import { AegisError } from "../errors.ts";
import { decodeBase64 } from "../util/bytes.ts";
import {
  applyPolicyBytes,
  type PolicyApplyDeps,
  type PolicyApplyReport,
  policyShow,
} from "../policy/apply.ts";
import { MAX_FILE_BYTES } from "../policy/parse.ts";
import type { RuleVerification } from "../proof/verify.ts";
import { applyWithCanary, type CanaryResult, MAX_CANARY_SECONDS } from "../policy/canary.ts";

export const ApplyPolicyBody = z.strictObject({
  file: z.string().min(1).max(4096),
  policy_b64: z.string(),
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/).optional(),
  require_signature: z.boolean().optional(),
  dry_run: z.boolean().optional(),
  reset: z.boolean().optional(),
  no_rollback: z.boolean().optional(),
  canary: z.strictObject({
    window_s: z.number().int().min(1).max(MAX_CANARY_SECONDS),
    threshold_per_s: z.number().min(0).max(1e9),
  }).optional(),
});
export type ApplyPolicyBody = z.infer<typeof ApplyPolicyBody>;

export interface PolicyRoutesDeps {
  /** what an apply writes into (the daemon's maps, state dir, keys, live rules) */
  apply: PolicyApplyDeps;
  /** after a successful (not dry-run) apply: replace the UnresolvedWatcher, log, emit */
  onApplied?: (report: PolicyApplyReport, caller: ControlCaller) => void;
  /** an apply was refused or failed (the previous policy enforces) */
  onRefused?: (error: AegisError, caller: ControlCaller) => void;
  onError?: (what: string, e: unknown) => void;
  /** after a successful apply: prove its rules (as RuleRoutesDeps.verify) */
  verify?: () => Promise<RuleVerification | null>;
  /** the kernel's count of matched operations, for `canary` (absent: canary refused) */
  canaryCount?: () => number;
  /** a canary watch ended (kept, rolled back or superseded): the daemon emits policy_canary */
  onCanary?: (result: CanaryResult, report: PolicyApplyReport, caller: ControlCaller) => void;
}

/** Largest POST /policy/apply body: a 16 MiB policy in base64 plus the options. */
export const MAX_APPLY_BODY_BYTES = Math.ceil(MAX_FILE_BYTES / 3) * 4 + 64 * 1024;

/** The "/policy" sub-app. */
export function createPolicyRoutes(deps: PolicyRoutesDeps): Hono {
  const app = new Hono();
  app.post("/apply", async (c) => {
    const caller = callerOf(c);
    const body = validate(ApplyPolicyBody, await readJsonBody(c, MAX_APPLY_BODY_BYTES));
    let bytes: Uint8Array;
    try {
      bytes = decodeBase64(body.policy_b64);
    } catch {
      throw new ControlHttpError(400, "BAD_REQUEST", "policy_b64 is not base64");
    }
    const req = {
      file: body.file,
      bytes,
      sha256: body.sha256,
      requireSignature: body.require_signature,
      dryRun: body.dry_run,
      reset: body.reset,
      noRollback: body.no_rollback,
    };
    try {
      if (body.canary) {
        if (!deps.canaryCount) {
          throw new ControlHttpError(400, "BAD_REQUEST", "this agent cannot watch a canary");
        }
        const { report, canary } = await applyWithCanary(deps.apply, req, {
          windowSeconds: body.canary.window_s,
          thresholdPerS: body.canary.threshold_per_s,
        }, {
          count: deps.canaryCount,
          onApplied: (r) => deps.onApplied?.(r, caller),
        });
        deps.onCanary?.(canary, report, caller);
        const verification = canary.outcome === "kept" ? (await deps.verify?.()) ?? null : null;
        return c.json({ ...report, canary, verification }, 200);
      }
      const report = await applyPolicyBytes(deps.apply, req);
      if (report.dry_run) return c.json(report, 200);
      deps.onApplied?.(report, caller);
      const verification = (await deps.verify?.()) ?? null;
      return c.json({ ...report, verification }, 200);
    } catch (e) {
      if (e instanceof AegisError) deps.onRefused?.(e, caller);
      throw e;
    }
  });
  app.get(
    "/show",
    (c) => c.json(policyShow(deps.apply.maps, deps.apply.stateDir, deps.apply.live), 200),
  );
  app.onError(routeErrors(deps.onError));
  return app;
}
