/**
 * Serve the control app on the unix socket (default
 * /run/aegisbpf/control.sock) with our HTTP/1.1 server (src/http/httpd.ts)
 * over the shim's listener (src/native/unix_listener.ts), so every request
 * carries the peer's credentials from the kernel (SO_PEERCRED) as the Hono
 * env `{peer, remote}` — the caller recorded for every mutation
 * (src/control/caller.ts, docs/control.md).
 *
 * - the runtime directory is created 0700 and must be owned by the agent's
 *   uid (root) with no group/other access;
 * - an existing socket file is replaced only when nothing answers on it;
 * - the socket is chmod 0600 between bind() and listen() (in C: nobody can
 *   connect before), then checked;
 * - at most {@link CONTROL_MAX_CONNECTIONS} connections, header/idle/body
 *   timeouts (httpd defaults), bodies up to {@link MAX_APPLY_BODY_BYTES}
 *   (each route applies its own smaller limit);
 * - close() stops the server, waits until no call is left in the shim, and
 *   removes the socket.
 *
 * @module
 */
import type { Hono } from "hono";
import { openEmbeddedShim } from "../assets/mod.ts";
import { AegisError } from "../errors.ts";
import { type HttpServer, serveHttp } from "../http/httpd.ts";
import { literal, log } from "../log.ts";
import type { Shim } from "../native/shim.ts";
import { raiseNofileLimit, UnixListener } from "../native/unix_listener.ts";
import { MAX_APPLY_BODY_BYTES } from "./policy_routes.ts";
import { ensurePrivateDir, modeString } from "./perms.ts";

/** Longest wait at close for the listener's calls to leave the shim. */
const DRAIN_TIMEOUT_MS = 5000;

/** Open connections at most on the control socket (root-only; the oldest idle one is evicted). */
export const CONTROL_MAX_CONNECTIONS = 16;

/** A running control server. */
export interface ControlServer {
  readonly socketPath: string;
  close(): Promise<void>;
}

/** Options of {@link startControlServer}. */
export interface ControlServerOptions {
  /** owner the runtime directory must have (default: this process's uid) */
  ownerUid?: number;
  /** the loaded shim (default: the embedded one, opened here and closed by close()) */
  shim?: Shim;
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

  const shim = opts.shim ?? await openEmbeddedShim();
  const ownShim = opts.shim === undefined;
  let listener: UnixListener;
  try {
    listener = UnixListener.listen(shim, socketPath, { mode: 0o600 });
  } catch (e) {
    if (ownShim) shim.close();
    throw new AegisError(
      "CONTROL_SOCKET_FAILED",
      `Cannot listen on the control socket "${socketPath}": ${(e as Error).message}`,
      { cause: e },
    );
  }
  let server: HttpServer | null = null;
  const shutdown = async () => {
    if (server) await server.close();
    listener.close();
    // no call may be left in the shim when it is closed: every call returns within one
    // poll slice (1 s) once its fd is shut down; if one did not, leave the shim loaded
    let t: ReturnType<typeof setTimeout> | undefined;
    const drained = await Promise.race([
      listener.drained().then(() => true),
      new Promise<boolean>((r) => t = setTimeout(() => r(false), DRAIN_TIMEOUT_MS)),
    ]);
    clearTimeout(t);
    if (!drained) {
      lg.warn(
        literal(`control socket: calls still in the shim after close; the shim stays loaded`),
      );
    } else if (ownShim) shim.close();
    try {
      Deno.removeSync(socketPath);
    } catch { /* already gone */ }
  };
  try {
    const st = Deno.lstatSync(socketPath);
    if (!st.isSocket || ((st.mode ?? 0) & 0o777) !== 0o600) {
      throw new Error(`mode is ${modeString(st.mode)}, not 0600`);
    }
  } catch (e) {
    await shutdown();
    throw new AegisError(
      "CONTROL_SOCKET_FAILED",
      `Cannot make the control socket "${socketPath}" root-only (0600): ${(e as Error).message}`,
      { cause: e },
    );
  }
  server = serveHttp(listener, (req, env) => app.fetch(req, env), {
    name: "control",
    maxConnections: CONTROL_MAX_CONNECTIONS,
    maxBodyBytes: MAX_APPLY_BODY_BYTES,
  });
  lg.info(literal(`control socket listening on ${socketPath} (mode 0600, peer credentials)`));
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

/**
 * Raise RLIMIT_NOFILE's soft limit to the hard limit, once at daemon start
 * (docs/security.md: a connection flood must meet the listeners' own caps,
 * not EMFILE), and log the old and new values. Never throws: a failure is a
 * warning and the daemon runs with the limit it has.
 */
export function raiseFdLimitAtStart(shim: Shim): void {
  const lg = log("run");
  try {
    const r = raiseNofileLimit(shim);
    lg.info(
      literal(
        `RLIMIT_NOFILE soft limit ${r.oldSoft} -> ${r.newSoft} (hard ${
          r.hard === Infinity ? "unlimited" : r.hard
        })`,
      ),
      { nofile_old: r.oldSoft, nofile_new: r.newSoft, nofile_hard: r.hard },
    );
  } catch (e) {
    lg.warn(literal(`cannot raise RLIMIT_NOFILE: ${e instanceof Error ? e.message : e}`));
  }
}
