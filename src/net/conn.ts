/**
 * The byte-stream connections our own HTTP server (src/http/httpd.ts) reads
 * requests from: a TCP connection from Deno.listen, or a unix-socket
 * connection accepted by the shim, which also knows the peer's credentials as
 * the kernel reported them (SO_PEERCRED). See docs/security.md.
 *
 * @module
 */

/** The peer of a unix-socket connection, as the kernel recorded it at connect(). */
export interface PeerCred {
  uid: number;
  gid: number;
  pid: number;
}

/** One accepted connection. */
export interface ServerConn {
  /** Kernel-reported peer credentials (unix sockets); null when unknown (TCP). */
  readonly peer: PeerCred | null;
  /** For logs only: "127.0.0.1:41234" or "unix". */
  readonly remote: string;
  /** Read up to buf.length bytes; null at end of stream. Rejects once closed. */
  read(buf: Uint8Array): Promise<number | null>;
  /** Write some of buf; resolves with the count written. */
  write(buf: Uint8Array): Promise<number>;
  /** Close now; pending reads and writes reject. Safe to call twice. */
  close(): void;
}

/** A listening socket. */
export interface ServerListener {
  /** The next connection. Rejects when closed, or with the accept error (EMFILE, ENFILE …). */
  accept(): Promise<ServerConn>;
  /** Stop listening; a pending accept() rejects. Safe to call twice. */
  close(): void;
}
