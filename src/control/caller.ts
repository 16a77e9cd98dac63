/**
 * Who asked for a mutation on the control socket: the peer's credentials
 * as the kernel recorded them at connect() (SO_PEERCRED, read by the shim's
 * listener, src/native/unix_listener.ts), handed to the control app as the
 * Hono env `{peer, remote}`. Nothing the client sends (headers, body) is
 * ever the identity. A request without kernel credentials (app.request in
 * tests, any server that does not supply them) is recorded as an unknown
 * caller: uid/pid/gid -1 and `source: "unknown"`. See docs/control.md.
 *
 * @module
 */
import type { Context } from "hono";
import type { Caller } from "../contracts.ts";
import type { PeerCred } from "../net/conn.ts";

/**
 * Where a caller's identity comes from: "kernel" (SO_PEERCRED on the
 * control socket), "self" (the CLI acting without a daemon: its own
 * uid/pid), "unknown" (no credentials: uid/pid -1).
 */
export type CallerSource = "kernel" | "self" | "unknown";

/** A {@link Caller} that says where its identity comes from. */
export interface ControlCaller extends Caller {
  gid: number;
  source: CallerSource;
}

/** The Hono env of a control-socket request (the HTTP server's `env`). */
export interface ControlEnv {
  /** kernel-reported peer credentials; null/absent when unknown */
  peer?: PeerCred | null;
  remote?: string;
}

/** The caller of a request without kernel credentials. */
export const UNKNOWN_CALLER: Readonly<ControlCaller> = Object.freeze({
  uid: -1,
  pid: -1,
  gid: -1,
  source: "unknown",
});

function isId(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** The caller of `c`: its kernel peer credentials, or {@link UNKNOWN_CALLER}. */
export function callerOf(c: Context): ControlCaller {
  // c.env is whatever the server passed: only a well-formed peer counts
  const env = c.env as ControlEnv | undefined;
  const peer = env && typeof env === "object" ? env.peer : null;
  if (!peer || !isId(peer.uid) || !isId(peer.pid) || !isId(peer.gid)) {
    return { ...UNKNOWN_CALLER };
  }
  return { uid: peer.uid, pid: peer.pid, gid: peer.gid, source: "kernel" };
}

/** The CLI's own identity, for a mutation it makes without a daemon. */
export function selfCaller(): ControlCaller {
  return { uid: Deno.uid() ?? -1, pid: Deno.pid, gid: Deno.gid() ?? -1, source: "self" };
}

/** The source of any Caller (a plain {uid, pid} is from an older call site: "unknown" if -1). */
export function callerSource(caller: Caller): CallerSource {
  const s = (caller as Partial<ControlCaller>).source;
  if (s === "kernel" || s === "self" || s === "unknown") return s;
  return caller.uid < 0 ? "unknown" : "self";
}

/** For log lines: "uid 0 pid 4242 (kernel)" or "an unknown caller (no kernel credentials)". */
export function describeCaller(caller: Caller): string {
  const source = callerSource(caller);
  if (source === "unknown") return "an unknown caller (no kernel credentials)";
  return `uid ${caller.uid} pid ${caller.pid} (${source})`;
}
