/**
 * The CLI's way to the running daemon: HTTP over the root-only unix socket
 * (/run/aegisbpf/control.sock). `daemonRequest` answers null when no daemon
 * listens there, so a command can fall back to doing the work itself.
 *
 * @module
 */
import { aegisPaths } from "../daemon/contracts.ts";
import { AegisError } from "../errors.ts";

/** Request headers that carry who is asking (the socket is root-only; see docs/control.md). */
export const CALLER_UID_HEADER = "x-aegis-caller-uid";
export const CALLER_PID_HEADER = "x-aegis-caller-pid";

export interface DaemonReply {
  status: number;
  body: unknown;
}

/**
 * Send one request to the daemon's control socket and hand the response to
 * `read` (the connection stays open until `read` is done). Null when there
 * is no socket or nothing accepts on it (no daemon).
 */
export async function withDaemon<T>(
  method: "GET" | "POST" | "DELETE",
  path: string,
  body: unknown,
  read: (res: Response) => Promise<T>,
  socket: string = aegisPaths().controlSocket,
): Promise<T | null> {
  try {
    const st = Deno.statSync(socket);
    if (!st.isSocket) return null;
  } catch {
    return null;
  }
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
  try {
    let res: Response;
    try {
      res = await fetch(`http://aegisbpf${path}`, {
        method,
        client,
        headers: {
          "content-type": "application/json",
          [CALLER_UID_HEADER]: String(Deno.uid() ?? -1),
          [CALLER_PID_HEADER]: String(Deno.pid),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      // a stale socket file with no daemon behind it
      if (e instanceof TypeError) return null;
      throw e;
    }
    return await read(res);
  } finally {
    client.close();
  }
}

/**
 * Send one request to the daemon's control socket. Null when there is no
 * socket or nothing accepts on it (no daemon); an AegisError when the
 * daemon answered something that is not JSON.
 */
export function daemonRequest(
  method: "GET" | "POST" | "DELETE",
  path: string,
  body?: unknown,
  socket: string = aegisPaths().controlSocket,
): Promise<DaemonReply | null> {
  return withDaemon(method, path, body, async (res) => {
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) };
    } catch {
      throw new AegisError(
        "DAEMON_BAD_REPLY",
        `the daemon at ${socket} answered ${method} ${path} with HTTP ${res.status} and a ` +
          `body that is not JSON: ${JSON.stringify(text.slice(0, 200))}`,
      );
    }
  }, socket);
}

/**
 * The caller a request claims (uid and pid headers), checked against
 * /proc/<pid>: the process must exist and have that real uid. Only root
 * can connect to the 0600 socket, so this records who, it does not
 * authenticate. Unknown or inconsistent claims give uid/pid -1.
 */
export function callerFromHeaders(headers: Headers): { uid: number; pid: number } {
  const uid = Number(headers.get(CALLER_UID_HEADER));
  const pid = Number(headers.get(CALLER_PID_HEADER));
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(pid) || pid <= 0 || uid < 0) {
    return { uid: -1, pid: -1 };
  }
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /^Uid:\s+(\d+)/m.exec(status);
    if (!m || Number(m[1]) !== uid) return { uid: -1, pid };
  } catch {
    return { uid: -1, pid };
  }
  return { uid, pid };
}
