/**
 * The CLI's way to the running daemon: HTTP over the root-only unix socket
 * (/run/aegisbpf/control.sock). `daemonRequest` answers null when no daemon
 * listens there, so a command can fall back to doing the work itself.
 *
 * @module
 */
import { aegisPaths } from "../daemon/contracts.ts";
import { AegisError } from "../errors.ts";

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
        // no identity header: the daemon takes the caller from the kernel
        // (SO_PEERCRED on the socket; docs/control.md)
        headers: { "content-type": "application/json" },
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
