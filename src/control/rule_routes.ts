/**
 * Control-socket routes for live rule edits (docs/control.md: mutations only
 * on the root-only unix socket), mounted at "/rules":
 *   GET    /rules?group=block|allow|network|cgroup_deny → {rules: ListedRule[], expired}
 *   POST   /rules  {rule: LiveRuleRequest, ttl_seconds?: number|null}
 *                                             → {rule, renewed, expired}
 *   DELETE /rules  {rule: LiveRuleRequest}    → {rule, expired}
 *   POST   /rules/clear {group}               → {rules: LiveRule[] (deleted), expired}
 * Thin: the work is in LiveRules (policy/live.ts), which the CLI calls
 * directly when no daemon runs. Every route sweeps expired TTL rules first
 * and returns them in `expired` (and to `onExpired`). The caller handed to
 * onChange is the socket peer as the kernel reported it (caller.ts), never
 * a client claim. Errors: route_errors.ts.
 *
 * @module
 */
import { Hono } from "hono";
import { z } from "zod";
import { callerOf, type ControlCaller } from "./caller.ts";
import { ControlHttpError, readJsonBody, validate } from "./app.ts";
import { routeErrors } from "./route_errors.ts";
import {
  type LiveRule,
  LiveRuleRequest,
  type LiveRules,
  MAX_TTL_SECONDS,
  RULE_GROUPS,
  type RuleGroup,
} from "../policy/live.ts";
import type { RuleVerification } from "../proof/verify.ts";

export const AddRuleBody = z.strictObject({
  rule: LiveRuleRequest,
  ttl_seconds: z.number().int().min(1).max(MAX_TTL_SECONDS).nullable().optional(),
});
export const DelRuleBody = z.strictObject({ rule: LiveRuleRequest });
export const ClearRulesBody = z.strictObject({ group: z.enum(RULE_GROUPS) });

/** A `group` query or body value, or a 400 naming the accepted ones. */
function ruleGroup(v: string): RuleGroup {
  const g = RULE_GROUPS.find((x) => x === v);
  if (g === undefined) {
    throw new ControlHttpError(
      400,
      "BAD_REQUEST",
      `group must be one of ${RULE_GROUPS.join(", ")}`,
    );
  }
  return g;
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
    const group = ruleGroup(c.req.query("group") ?? "");
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
  app.post("/clear", async (c) => {
    const body = validate(ClearRulesBody, await readJsonBody(c));
    const expired = sweep();
    const rules = deps.live.delGroup(body.group);
    const caller = callerOf(c);
    for (const rule of rules) deps.onChange?.({ action: "del", rule, caller });
    return c.json({ rules, expired }, 200);
  });
  app.onError(routeErrors(deps.onError));
  return app;
}
