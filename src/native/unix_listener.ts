/**
 * A unix-socket listener made in the shim (ffi/aegis_sock.c), because Deno
 * can neither read SO_PEERCRED nor wrap a raw fd: every accepted
 * {@link ServerConn} carries the peer's pid/uid/gid as the kernel recorded
 * them at connect(), which the control socket uses as the caller's identity
 * (docs/control.md).
 *
 * Accept, read and write wait in C (poll with a timeout of `sliceMs`) on
 * Deno's blocking thread pool. Two bounds keep that pool safe:
 * - no call waits longer than `sliceMs`: an idle read gives its thread back
 *   and is re-issued, so a closed connection is noticed within one slice;
 * - at most `maxBlocked` reads and writes of one listener's connections
 *   are in C at once; more wait in a queue in JavaScript, holding no
 *   thread. Accepts do not queue behind them: one accept at a time has a
 *   slot of its own (concurrent accept() calls wait for each other), so a
 *   flood of slow connections never stalls accepting.
 * close() shuts the socket down (which wakes a call waiting in poll on it)
 * and closes the fd only once no call on it is in flight, so an fd number
 * is never reused under a running call. {@link UnixListener.drained}
 * resolves when every fd is closed and no call is in C (then the shim may
 * be closed).
 *
 * @module
 */
import { AegisError, NativeCallError, UsageError } from "../errors.ts";
import type { PeerCred, ServerConn, ServerListener } from "../net/conn.ts";
import type { Shim } from "./shim.ts";

const ETIMEDOUT = 110;
const EAGAIN = 11;
const EINTR = 4;
const ECONNABORTED = 103;

/** Options of {@link UnixListener.listen}. */
export interface UnixListenerOptions {
  /** mode of the socket file, set before listen() (default 0o600) */
  mode?: number;
  /** listen() backlog (default 64) */
  backlog?: number;
  /** most reads and writes of this listener's connections waiting in C at once (default 32) */
  maxBlocked?: number;
  /** longest single wait in C, ms (default 1000) */
  sliceMs?: number;
}

/** A FIFO counting semaphore. */
class Gate {
  #active = 0;
  #queue: (() => void)[] = [];
  constructor(readonly max: number) {}
  get active(): number {
    return this.#active;
  }
  async acquire(): Promise<void> {
    if (this.#active < this.max) {
      this.#active++;
      return;
    }
    await new Promise<void>((resolve) => this.#queue.push(resolve));
  }
  release(): void {
    const next = this.#queue.shift();
    if (next) next(); // the slot passes to the next waiter
    else this.#active--;
  }
}

function closedError(what: string): AegisError {
  return new AegisError("CLOSED", `the ${what} is closed`);
}

/** One fd: in-flight accounting and close-after-the-last-call. */
class FdState {
  inflight = 0;
  closed = false;
  #released = false;
  constructor(
    readonly shim: Shim,
    readonly fd: number,
    readonly onReleased: () => void,
  ) {}
  /** Mark closed, wake waiters, close the fd once nothing is in flight. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.shim.lib.aegis_sock_shutdown(this.fd);
    this.maybeRelease();
  }
  maybeRelease(): void {
    if (!this.closed || this.inflight > 0 || this.#released) return;
    this.#released = true;
    this.shim.lib.aegis_sock_close(this.fd);
    this.onReleased();
  }
}

class UnixConn implements ServerConn {
  readonly peer: PeerCred;
  readonly remote = "unix";
  readonly #s: FdState;
  readonly #l: UnixListener;

  constructor(l: UnixListener, s: FdState, peer: PeerCred) {
    this.#l = l;
    this.#s = s;
    this.peer = peer;
  }

  /** Run one waiting C call on this fd under the listener's gate. */
  async #call(
    name: string,
    fn: () => Promise<number>,
  ): Promise<number> {
    for (;;) {
      if (this.#s.closed) throw closedError("connection");
      await this.#l.gate.acquire();
      if (this.#s.closed) {
        this.#l.gate.release();
        throw closedError("connection");
      }
      this.#s.inflight++;
      let rc: number;
      try {
        rc = await fn();
      } finally {
        this.#s.inflight--;
        this.#l.gate.release();
        this.#s.maybeRelease();
      }
      if (this.#s.closed) throw closedError("connection");
      if (rc >= 0) return rc;
      if (rc === -ETIMEDOUT || rc === -EAGAIN || rc === -EINTR) continue;
      throw new NativeCallError(name, -rc, `unix socket fd ${this.#s.fd}`);
    }
  }

  async read(buf: Uint8Array): Promise<number | null> {
    if (buf.length === 0) {
      if (this.#s.closed) throw closedError("connection");
      return 0;
    }
    const cap = Math.min(buf.length, 1 << 30);
    const n = await this.#call(
      "aegis_sock_read",
      () => this.#s.shim.lib.aegis_sock_read(this.#s.fd, buf, cap, this.#l.sliceMs),
    );
    return n === 0 ? null : n;
  }

  write(buf: Uint8Array): Promise<number> {
    if (buf.length === 0) {
      return this.#s.closed ? Promise.reject(closedError("connection")) : Promise.resolve(0);
    }
    const len = Math.min(buf.length, 1 << 30);
    return this.#call(
      "aegis_sock_write",
      () => this.#s.shim.lib.aegis_sock_write(this.#s.fd, buf, len, this.#l.sliceMs),
    );
  }

  close(): void {
    this.#s.close();
  }
}

/** A listening unix socket whose connections know their peer (SO_PEERCRED). */
export class UnixListener implements ServerListener {
  readonly path: string;
  readonly sliceMs: number;
  /** @internal bounds the calls waiting in C */
  readonly gate: Gate;
  readonly #acceptGate = new Gate(1);
  readonly #shim: Shim;
  readonly #ls: FdState;
  #open = 0; // fds not yet closed (listener + connections)
  #drained: Promise<void>;
  #resolveDrained!: () => void;

  private constructor(shim: Shim, path: string, fd: number, opts: UnixListenerOptions) {
    this.#shim = shim;
    this.path = path;
    this.sliceMs = opts.sliceMs ?? 1000;
    this.gate = new Gate(opts.maxBlocked ?? 32);
    this.#drained = new Promise((r) => this.#resolveDrained = r);
    this.#ls = this.#track(fd);
  }

  /**
   * Bind and listen on `path` (which must not exist), mode set before
   * listen(). Throws NativeCallError (EADDRINUSE, ENAMETOOLONG …).
   */
  static listen(shim: Shim, path: string, opts: UnixListenerOptions = {}): UnixListener {
    const mode = opts.mode ?? 0o600;
    const backlog = opts.backlog ?? 64;
    const maxBlocked = opts.maxBlocked ?? 32;
    const sliceMs = opts.sliceMs ?? 1000;
    if (!Number.isInteger(maxBlocked) || maxBlocked < 1) {
      throw new UsageError(`maxBlocked must be an integer >= 1 (got ${maxBlocked})`);
    }
    if (!Number.isInteger(sliceMs) || sliceMs < 1 || sliceMs > 60_000) {
      throw new UsageError(`sliceMs must be an integer in 1..60000 (got ${sliceMs})`);
    }
    if (path.includes("\0")) {
      throw new UsageError(`NUL byte in socket path ${JSON.stringify(path)}`);
    }
    const fd = shim.lib.aegis_unix_listen(
      new TextEncoder().encode(path + "\0"),
      mode,
      backlog,
    );
    if (fd < 0) throw new NativeCallError("aegis_unix_listen", -fd, path);
    return new UnixListener(shim, path, fd, opts);
  }

  #track(fd: number): FdState {
    this.#open++;
    return new FdState(this.#shim, fd, () => {
      if (--this.#open === 0) this.#resolveDrained();
    });
  }

  /** Calls in C right now (for tests and metrics). */
  get blockedCalls(): number {
    return this.gate.active + this.#acceptGate.active;
  }

  async accept(): Promise<ServerConn> {
    const cred = new Int32Array(3);
    for (;;) {
      if (this.#ls.closed) throw closedError("listener");
      await this.#acceptGate.acquire();
      if (this.#ls.closed) {
        this.#acceptGate.release();
        throw closedError("listener");
      }
      this.#ls.inflight++;
      let rc: number;
      try {
        rc = await this.#shim.lib.aegis_unix_accept(this.#ls.fd, this.sliceMs, cred);
      } finally {
        this.#ls.inflight--;
        this.#acceptGate.release();
        this.#ls.maybeRelease();
      }
      if (rc >= 0) {
        const s = this.#track(rc);
        if (this.#ls.closed) {
          s.close();
          throw closedError("listener");
        }
        const peer: PeerCred = { pid: cred[0], uid: cred[1] >>> 0, gid: cred[2] >>> 0 };
        return new UnixConn(this, s, peer);
      }
      if (this.#ls.closed) throw closedError("listener");
      if (
        rc === -ETIMEDOUT || rc === -EAGAIN || rc === -EINTR || rc === -ECONNABORTED
      ) continue;
      // EMFILE, ENFILE, ENOBUFS …: the caller backs off and retries
      const why = -rc === 23 ? "ENFILE, the system file table is full: " : "";
      throw new NativeCallError("aegis_unix_accept", -rc, `${why}${this.path}`);
    }
  }

  /** Stop listening (connections already accepted stay open). Safe twice. */
  close(): void {
    this.#ls.close();
  }

  /**
   * Resolves once the listener and every connection it accepted are closed
   * and no call of theirs is in C (the shim may then be closed).
   */
  drained(): Promise<void> {
    return this.#drained;
  }
}

/** RLIMIT_NOFILE before and after {@link raiseNofileLimit}. */
export interface NofileLimits {
  oldSoft: number;
  hard: number;
  newSoft: number;
}

/**
 * Raise this process's RLIMIT_NOFILE soft limit to `target` (0: the hard
 * limit, or 1048576 when the hard limit is unlimited); never above the hard
 * limit, never lower. A flood of connections then hits the listeners' own
 * caps long before EMFILE (docs/security.md).
 */
export function raiseNofileLimit(shim: Shim, target = 0): NofileLimits {
  const out = new BigUint64Array(3);
  const rc = shim.lib.aegis_raise_nofile(BigInt(target), out);
  if (rc < 0) throw new NativeCallError("aegis_raise_nofile", -rc, `target ${target}`);
  const num = (v: bigint) => v > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(v);
  return { oldSoft: num(out[0]), hard: num(out[1]), newSoft: num(out[2]) };
}
