/**
 * The control socket's HTTP app (docs/control.md): the mutating API, served only
 * on the root-only unix socket (src/control/server.ts), never on TCP.
 *
 * - `POST /emergency/disable`, `POST /emergency/enable`: body
 *   `{"reason": "..."}` (zod, no other keys, at most 64 KiB) →
 *   200 {@link ToggleResult}.
 * - `GET /emergency/status` → 200 {@link EmergencyStatus}.
 * - other mounted sub-apps (`mounts`, e.g. "/rules", "/policy") and the
 *   read-only app (GET /health, /state, …) answer on the socket too.
 * - Errors are JSON `{error, code}`: 400 bad body, 404 unknown path, 405
 *   wrong method, 409 lock held, 413 body too large, 500 for a failure
 *   the operator must fix (its message names it), with no stack or
 *   internals; an unexpected exception is `{error:"internal error",
 *   code:"INTERNAL"}` and is logged in full.
 *
 * Every mutation is logged with who asked, as the kernel reported the
 * socket's peer (SO_PEERCRED; src/control/caller.ts), and what they asked
 * for. JSON bodies are bounded before parsing: size while streaming
 * ({@link MAX_BODY_BYTES} or the route's limit), nesting depth by a scan
 * before JSON.parse ({@link MAX_JSON_DEPTH}).
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "zod";
import { AegisError } from "../errors.ts";
import { literal, log } from "../log.ts";
import { callerOf, describeCaller } from "./caller.ts";
import type { EmergencyControl } from "./emergency.ts";

/** Largest request body accepted on the control socket. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Deepest nesting of arrays and objects accepted in a JSON body. */
export const MAX_JSON_DEPTH = 64;

/**
 * Tracks the nesting of `[`/`{` in JSON text fed in chunks (brackets
 * inside strings do not count; an escape may straddle two chunks). One
 * pass, no allocation: run while the body streams in, so a deep body is
 * refused before it is all read and before JSON.parse allocates anything.
 * UTF-8 multi-byte sequences never contain ASCII bytes, so bytes suffice.
 */
export class JsonDepthScanner {
  #depth = 0;
  #inString = false;
  #escape = false;
  constructor(readonly max: number) {}
  /** Feed the next bytes; true as soon as the nesting passed `max`. */
  feed(bytes: Uint8Array): boolean {
    let depth = this.#depth;
    let inString = this.#inString;
    let escape = this.#escape;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i];
      if (inString) {
        if (escape) escape = false;
        else if (b === 0x5c) escape = true; // backslash: the next byte is escaped
        else if (b === 0x22) inString = false;
      } else if (b === 0x22) inString = true;
      else if (b === 0x5b || b === 0x7b) {
        if (++depth > this.max) {
          this.#depth = depth;
          return true;
        }
      } else if (b === 0x5d || b === 0x7d) depth--;
    }
    this.#depth = depth;
    this.#inString = inString;
    this.#escape = escape;
    return false;
  }
}

/** Does JSON text `bytes` nest `[`/`{` deeper than `max`? (see {@link JsonDepthScanner}) */
export function jsonDepthExceeds(bytes: Uint8Array, max: number): boolean {
  return new JsonDepthScanner(max).feed(bytes);
}

/** Body of POST /emergency/disable and /emergency/enable. */
export const ToggleRequestSchema = z.strictObject({
  reason: z.string().min(1, "reason must not be empty"),
});

/** The error body of every non-2xx answer. */
export const ErrorBodySchema = z.object({ error: z.string(), code: z.string() });

/** What {@link createControlApp} serves. */
export interface ControlAppDeps {
  emergency: EmergencyControl;
  /** the read-only HTTP app (GET /health, /state, …), also answered on the socket */
  readOnly?: Hono;
  /** more mutating sub-apps by prefix, e.g. { "/rules": rulesApp, "/policy": policyApp } */
  mounts?: Record<string, Hono>;
}

/** An error with its HTTP status and machine code. */
export class ControlHttpError extends HTTPException {
  readonly code: string;
  constructor(status: ContentfulStatusCode, code: string, message: string) {
    super(status, { message });
    this.code = code;
  }
}

const STATUS_BY_CODE: Record<string, ContentfulStatusCode> = {
  USAGE: 400,
  EMERGENCY_LOCKED: 409,
  STARTING: 503,
};

function tooDeep(): ControlHttpError {
  return new ControlHttpError(
    400,
    "JSON_TOO_DEEP",
    `the request body nests arrays/objects more than ${MAX_JSON_DEPTH} deep; ` +
      `the limit is ${MAX_JSON_DEPTH}`,
  );
}

/**
 * Read the body as JSON: at most `limit` bytes whatever Content-Length
 * claims, and at most {@link MAX_JSON_DEPTH} levels of nesting, both
 * checked while it streams in, before JSON.parse.
 */
export async function readJsonBody(c: Context, limit = MAX_BODY_BYTES): Promise<unknown> {
  const declared = c.req.header("content-length");
  if (declared !== undefined && Number(declared) > limit) {
    throw new ControlHttpError(
      413,
      "BODY_TOO_LARGE",
      `request body of ${declared} bytes; the limit is ${limit} bytes`,
    );
  }
  const body = c.req.raw.body;
  const chunks: Uint8Array[] = [];
  let total = 0;
  const depth = new JsonDepthScanner(MAX_JSON_DEPTH);
  if (body) {
    const reader = body.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw new ControlHttpError(
          413,
          "BODY_TOO_LARGE",
          `request body over ${limit} bytes; the limit is ${limit} bytes`,
        );
      }
      if (depth.feed(value)) {
        await reader.cancel().catch(() => {});
        throw tooDeep();
      }
      chunks.push(value);
    }
  }
  const bytes = new Uint8Array(total);
  let off = 0;
  for (const ch of chunks) {
    bytes.set(ch, off);
    off += ch.length;
  }
  if (total === 0) {
    throw new ControlHttpError(400, "BAD_REQUEST", `a JSON body is required`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ControlHttpError(400, "BAD_REQUEST", "the request body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ControlHttpError(
      400,
      "INVALID_JSON",
      `the request body is not JSON: ${(e as Error).message}`,
    );
  }
}

/** Validate `value` with `schema` or answer 400 naming every problem. */
export function validate<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const r = schema.safeParse(value);
  if (!r.success) {
    throw new ControlHttpError(
      400,
      "BAD_REQUEST",
      `invalid request body: ${
        r.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; ")
      }`,
    );
  }
  return r.data;
}

function methodNotAllowed(allowed: string) {
  return (c: Context) => {
    c.header("allow", allowed);
    return c.json({
      error: `method ${c.req.method} is not allowed on ${c.req.path}; use ${allowed}`,
      code: "METHOD_NOT_ALLOWED",
    }, 405);
  };
}

/** The Hono app of the control socket. Never listens; see startControlServer. */
export function createControlApp(deps: ControlAppDeps): Hono {
  const app = new Hono();
  const lg = log("control", "http");

  const toggle = (disable: boolean) => async (c: Context) => {
    const caller = callerOf(c);
    const what = disable ? "emergency-disable" : "emergency-enable";
    const body = validate(ToggleRequestSchema, await readJsonBody(c));
    lg.info(literal(`${what} requested by ${describeCaller(caller)}`), {
      caller,
      request: `${c.req.method} ${c.req.path}`,
    });
    const result = await deps.emergency.toggle(disable, body.reason, caller);
    lg.info(
      literal(`${what} by ${describeCaller(caller)}: ${result.changed ? "done" : "no change"}`),
      { caller, changed: result.changed, active: result.active },
    );
    return c.json(result, 200);
  };

  app.post("/emergency/disable", toggle(true));
  app.post("/emergency/enable", toggle(false));
  app.all("/emergency/disable", methodNotAllowed("POST"));
  app.all("/emergency/enable", methodNotAllowed("POST"));
  app.get("/emergency/status", (c) => c.json(deps.emergency.status(), 200));
  app.all("/emergency/status", methodNotAllowed("GET"));

  for (const [prefix, sub] of Object.entries(deps.mounts ?? {})) app.route(prefix, sub);
  if (deps.readOnly) app.route("/", deps.readOnly);

  app.notFound((c) =>
    c.json({ error: `no such endpoint: ${c.req.method} ${c.req.path}`, code: "NOT_FOUND" }, 404)
  );
  app.onError((err, c) => {
    if (err instanceof ControlHttpError) {
      return c.json({ error: err.message, code: err.code }, err.status);
    }
    if (err instanceof HTTPException) {
      const status = err.status as ContentfulStatusCode;
      return c.json({ error: err.message || "request refused", code: `HTTP_${status}` }, status);
    }
    if (err instanceof AegisError) {
      const status = STATUS_BY_CODE[err.code] ?? 500;
      lg.warn(literal(`${c.req.method} ${c.req.path} failed: [${err.code}] ${err.message}`), {
        code: err.code,
      });
      return c.json({ error: err.message, code: err.code }, status);
    }
    lg.error(literal(`${c.req.method} ${c.req.path}: unexpected error: ${String(err)}`), {
      stack: err instanceof Error ? err.stack : undefined,
    });
    return c.json({ error: "internal error", code: "INTERNAL" }, 500);
  });
  return app;
}
