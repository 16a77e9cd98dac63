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
import { writeStderr } from "../log.ts";

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
