/**
 * "Ask the daemon, else do it here", one way for every command. A command
 * that reads or changes the agent's state goes through the running daemon
 * (its control socket) when one answers, and acts on its own — on the pins
 * and the state directory — only when no daemon listens (ENOENT or
 * ECONNREFUSED before anything was sent). A connection that breaks after
 * the request was sent is OUTCOME_UNKNOWN (src/control/client.ts) and is
 * never followed by a local attempt.
 *
 * @module
 */
import { daemonRequest } from "../control/client.ts";
import { AegisError } from "../errors.ts";
import { writeStderr } from "../stdio.ts";
import type { HealthVerdict } from "../posture/health.ts";
import type { CapabilitiesReport } from "../posture/report.ts";

/** Who did the work: the daemon, or this process on the pins. */
export type Via = "daemon" | "local";

/**
 * One request to the running daemon: its JSON answer, null when no daemon
 * runs, or the daemon's refusal thrown as AegisError (its issue lines, such
 * as a policy's errors, printed to stderr first).
 */
export async function daemonCall<T>(
  method: "GET" | "POST" | "DELETE",
  path: string,
  body?: unknown,
): Promise<T | null> {
  const reply = await daemonRequest(method, path, body);
  if (reply === null) return null;
  const b = (reply.body ?? {}) as { error?: unknown; code?: unknown; issues?: unknown };
  if (reply.status >= 400) {
    if (Array.isArray(b.issues)) { for (const i of b.issues) writeStderr(`${i}\n`); }
    throw new AegisError(
      typeof b.code === "string" ? b.code : `HTTP_${reply.status}`,
      `the agent refused ${method} ${path}: ${
        typeof b.error === "string" ? b.error : `HTTP ${reply.status}`
      }`,
    );
  }
  return reply.body as T;
}

/** The daemon's answer when one runs, else what `local` does here; and which it was. */
export async function daemonOrLocal<T>(
  method: "GET" | "POST" | "DELETE",
  path: string,
  body: unknown,
  local: () => T | Promise<T>,
): Promise<{ value: T; via: Via }> {
  const answer = await daemonCall<T>(method, path, body);
  if (answer !== null) return { value: answer, via: "daemon" };
  return { value: await local(), via: "local" };
}

/**
 * A read from the running daemon whose answer counts at more than one
 * status (health: 200 healthy, 503 not): `accept` turns the status and body
 * into the value, or null for an answer it does not know, which is
 * DAEMON_BAD_REPLY naming the path, status and the start of the body. Null
 * when no daemon runs.
 */
export async function daemonRead<T>(
  path: string,
  accept: (status: number, body: unknown) => T | null,
): Promise<T | null> {
  const reply = await daemonRequest("GET", path);
  if (reply === null) return null;
  const value = accept(reply.status, reply.body);
  if (value === null) {
    throw new AegisError(
      "DAEMON_BAD_REPLY",
      `the daemon answered GET ${path} with HTTP ${reply.status} and an unexpected body: ` +
        JSON.stringify(reply.body).slice(0, 300),
    );
  }
  return value;
}

// The answers' schemas are loaded by the two reads below that need them, not
// by every command that goes through this module.

/** The daemon's health verdict (GET /health), or null when no daemon runs. */
export async function daemonHealth(requireEnforce: boolean): Promise<HealthVerdict | null> {
  const { HealthBody } = await import("../posture/health.ts");
  return daemonRead(requireEnforce ? "/health?require_enforce=1" : "/health", (status, b) => {
    const body = HealthBody.safeParse(b);
    if ((status !== 200 && status !== 503) || !body.success) return null;
    return { healthy: status === 200, status, body: body.data };
  });
}

/** The daemon's capability report (GET /capabilities), or null when no daemon runs. */
export async function daemonReport(): Promise<CapabilitiesReport | null> {
  const { parseReport } = await import("../posture/report.ts");
  return daemonRead(
    "/capabilities",
    (status, body) =>
      status === 200 ? parseReport(body, "the daemon's GET /capabilities answer") : null,
  );
}
