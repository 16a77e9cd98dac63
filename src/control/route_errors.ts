/**
 * The error answer shared by the control socket's resource routes (/rules in
 * rule_routes.ts, /policy in policy_routes.ts): `{error, code}` (+ `issues`
 * for a rejected policy) with 400 for bad input or a rejected policy, 404
 * for no such rule, 409 for a full map or an unsafe state, and 500
 * `{error:"internal error"}` for anything unexpected (reported to the
 * caller's `onError`, never sent). docs/control.md.
 *
 * @module
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ControlHttpError } from "./app.ts";
import { AegisError } from "../errors.ts";
import { PolicyRejectedError } from "../policy/store.ts";

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

/** The onError handler of a resource sub-app. */
export function routeErrors(
  report?: (what: string, e: unknown) => void,
): (err: Error, c: Context) => Response {
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
