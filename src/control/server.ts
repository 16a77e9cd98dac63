/**
 * Serve the control app on the unix socket (default
 * /run/aegisbpf/control.sock): the runtime directory is created 0700 and
 * must be owned by the agent's uid (root) with no group/other access; an
 * existing socket file is replaced only when nothing answers on it; the
 * socket is chmod 0600 right after bind (and checked); close() stops the
 * server and removes the socket.
 *
 * @module
 */
import type { Hono } from "hono";
import { AegisError } from "../errors.ts";
import { literal, log } from "../log.ts";
import { ensurePrivateDir, modeString } from "./perms.ts";

/** A running control server. */
export interface ControlServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

/** Options of {@link startControlServer}. */
export interface ControlServerOptions {
  /** owner the runtime directory must have (default: this process's uid) */
  ownerUid?: number;
}

function dirOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? (i === 0 ? "/" : ".") : path.slice(0, i);
}

/** Does something accept connections on the unix socket `path`? */
async function answers(path: string): Promise<boolean> {
  try {
    const conn = await Deno.connect({ transport: "unix", path });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Bind `app` to the unix socket `socketPath`. */
export async function startControlServer(
  app: Hono,
  socketPath: string,
  opts: ControlServerOptions = {},
): Promise<ControlServer> {
  const lg = log("control", "socket");
  const dir = dirOf(socketPath);
  ensurePrivateDir(dir, {
    what: "runtime directory",
    ownerUid: opts.ownerUid,
    forbiddenBits: 0o077,
  });

  let existing: Deno.FileInfo | null = null;
  try {
    existing = Deno.lstatSync(socketPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  if (existing) {
    if (!existing.isSocket) {
      throw new AegisError(
        "CONTROL_SOCKET_IN_USE",
        `"${socketPath}" exists and is not a socket; refusing to replace it. Move it away.`,
      );
    }
    if (await answers(socketPath)) {
      throw new AegisError(
        "CONTROL_SOCKET_IN_USE",
        `another agent is running: something answers on the control socket "${socketPath}". ` +
          `Stop it first (only one aegisbpf daemon may run).`,
      );
    }
    lg.info(literal(`removing the stale control socket ${socketPath} (nothing answers on it)`));
    Deno.removeSync(socketPath);
  }

  const ac = new AbortController();
  let server: Deno.HttpServer<Deno.UnixAddr>;
  try {
    server = Deno.serve(
      { path: socketPath, signal: ac.signal, onListen: () => {} },
      app.fetch,
    );
  } catch (e) {
    throw new AegisError(
      "CONTROL_SOCKET_FAILED",
      `Cannot listen on the control socket "${socketPath}": ${(e as Error).message}`,
      { cause: e },
    );
  }
  const shutdown = async () => {
    ac.abort();
    await server.finished.catch(() => {});
    try {
      Deno.removeSync(socketPath);
    } catch { /* already gone */ }
  };
  try {
    Deno.chmodSync(socketPath, 0o600);
    const st = Deno.lstatSync(socketPath);
    if (!st.isSocket || ((st.mode ?? 0) & 0o777) !== 0o600) {
      throw new Error(`mode is ${modeString(st.mode)} after chmod 0600`);
    }
  } catch (e) {
    await shutdown();
    throw new AegisError(
      "CONTROL_SOCKET_FAILED",
      `Cannot make the control socket "${socketPath}" root-only (0600): ${(e as Error).message}`,
      { cause: e },
    );
  }
  lg.info(literal(`control socket listening on ${socketPath} (mode 0600)`));
  let closed = false;
  return {
    socketPath,
    async close() {
      if (closed) return;
      closed = true;
      await shutdown();
    },
  };
}
