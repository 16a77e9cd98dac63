/**
 * Control-socket routes for policy apply and live rule edits (docs/control.md:
 * mutations only on the root-only unix socket). Both are thin: the work is
 * in applyPolicyBytes (apply.ts) and LiveRules (live.ts), which the CLI
 * calls directly when no daemon runs.
 *
 * Mounted at "/rules":
 *   GET    /rules?group=block|allow|network  → {rules: ListedRule[], expired}
 *   POST   /rules  {rule: LiveRuleRequest, ttl_seconds?: number|null}
 *                                             → {rule, renewed, expired}
 *   DELETE /rules  {rule: LiveRuleRequest}    → {rule, expired}
 * Mounted at "/policy":
 *   POST   /policy/apply {file, policy_b64, sha256?, require_signature?,
 *                         dry_run?, reset?, no_rollback?} → PolicyApplyReport
 *   GET    /policy/show                        → PolicyShow
 *
 * The caller handed to onChange/onApplied/onRefused is the socket peer as
 * the kernel reported it (src/control/caller.ts), never a client claim.
 *
 * Every rule route sweeps expired TTL rules first and returns them in
 * `expired` (and to `onExpired`). Errors are `{error, code}` (+ `issues`
 * for a rejected policy): 400 bad request or policy, 404 no such rule, 409
 * map full or unsafe state, 500 `{error:"internal error"}` for anything
 * unexpected (reported to `onError`, never sent).
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { callerOf, type ControlCaller } from "./caller.ts";
import { ControlHttpError, readJsonBody, validate } from "./app.ts";
import { AegisError } from "../errors.ts";
import { decodeBase64 } from "../util/bytes.ts";
import {
  applyPolicyBytes,
  type PolicyApplyDeps,
  type PolicyApplyReport,
  policyShow,
} from "../policy/apply.ts";
import { PolicyRejectedError } from "../policy/store.ts";
import { type LiveRule, LiveRuleRequest, type LiveRules, MAX_TTL_SECONDS } from "../policy/live.ts";
import { MAX_FILE_BYTES } from "../policy/parse.ts";
import type { RuleVerification } from "../proof/verify.ts";

export const AddRuleBody = z.strictObject({
  rule: LiveRuleRequest,
  ttl_seconds: z.number().int().min(1).max(MAX_TTL_SECONDS).nullable().optional(),
});
export const DelRuleBody = z.strictObject({ rule: LiveRuleRequest });
export const ApplyPolicyBody = z.strictObject({
  file: z.string().min(1).max(4096),
  policy_b64: z.string(),
  sha256: z.string().regex(/^[0-9a-fA-F]{64}$/).optional(),
  require_signature: z.boolean().optional(),
  dry_run: z.boolean().optional(),
  reset: z.boolean().optional(),
  no_rollback: z.boolean().optional(),
});
export type ApplyPolicyBody = z.infer<typeof ApplyPolicyBody>;

const STATUS: Record<string, ContentfulStatusCode> = {
  USAGE: 400,
  POLICY_INVALID: 400,
  POLICY_HASH_MISMATCH: 400,
  BUNDLE_REQUIRED: 400,
  NOT_FOUND: 404,
  MAP_FULL: 409,
  LIVE_STORE_UNSAFE: 409,
  LIVE_STORE_INVALID: 409,
  POLICY_APPLY_FAILED: 409,
};

/** Error handler shared by both sub-apps. */
function onError(report?: (what: string, e: unknown) => void) {
  return (err: Error, c: Context) => {
    if (err instanceof ControlHttpError) {
      return c.json({ error: err.message, code: err.code }, err.status);
    }
    if (err instanceof AegisError) {
      // bundle refusals (BUNDLE_*) are the caller's input too
      const status = STATUS[err.code] ?? (err.code.startsWith("BUNDLE_") ? 400 : 409);
      const body: Record<string, unknown> = { error: err.message, code: err.code };
      if (err instanceof PolicyRejectedError && err.issues.length > 0) body.issues = err.issues;
      return c.json(body, status);
    }
    report?.(`${c.req.method} ${c.req.path}`, err);
    return c.json({ error: "internal error", code: "INTERNAL" }, 500);
  };
}

export interface RuleRoutesDeps {
  live: LiveRules;
  /** the applied policy text (names policy rules by line in lists); "" if none */
  policyText: () => string;
  /** a rule was added or deleted (the daemon logs it / emits control_change) */
  onChange?: (change: { action: "add" | "del"; rule: LiveRule; caller: ControlCaller }) => void;
  /** TTL rules removed by the sweep every route does first */
  onExpired?: (rules: LiveRule[]) => void;
  /** unexpected failure (logged by the daemon; the client sees "internal error") */
  onError?: (what: string, e: unknown) => void;
  /**
   * After an added rule: prove it (one verification round, src/proof/verify.ts);
   * null when the agent does not verify now (not enforcing, emergency disable).
   */
  verify?: () => Promise<RuleVerification | null>;
}

/** The "/rules" sub-app. */
export function createRuleRoutes(deps: RuleRoutesDeps): Hono {
  const app = new Hono();
  const sweep = () => {
    const expired = deps.live.sweep();
    if (expired.length > 0) deps.onExpired?.(expired);
    return expired;
  };
  app.get("/", (c) => {
    const group = c.req.query("group") ?? "";
    if (group !== "block" && group !== "allow" && group !== "network") {
      throw new ControlHttpError(400, "BAD_REQUEST", `group must be block, allow or network`);
    }
    const expired = sweep();
    return c.json({ rules: deps.live.list(group, deps.policyText()), expired }, 200);
  });
  app.post("/", async (c) => {
    const body = validate(AddRuleBody, await readJsonBody(c));
    const expired = sweep();
    const r = deps.live.add(body.rule, body.ttl_seconds ?? null);
    deps.onChange?.({ action: "add", rule: r.rule, caller: callerOf(c) });
    const verification = (await deps.verify?.()) ?? null;
    return c.json({ ...r, expired, verification }, 200);
  });
  app.delete("/", async (c) => {
    const body = validate(DelRuleBody, await readJsonBody(c));
    const expired = sweep();
    const rule = deps.live.del(body.rule);
    deps.onChange?.({ action: "del", rule, caller: callerOf(c) });
    return c.json({ rule, expired }, 200);
  });
  app.onError(onError(deps.onError));
  return app;
}

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
    try {
      const report = await applyPolicyBytes(deps.apply, {
        file: body.file,
        bytes,
        sha256: body.sha256,
        requireSignature: body.require_signature,
        dryRun: body.dry_run,
        reset: body.reset,
        noRollback: body.no_rollback,
      });
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
  app.onError(onError(deps.onError));
  return app;
}
