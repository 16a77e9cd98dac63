/**
 * Fuzz target "httpd": our own HTTP/1.1 server (src/http/httpd.ts) on raw
 * request bytes, in front of the control app on fakes (apps.ts), through an
 * in-memory connection (no socket). Each input is one connection: its
 * bytes arrive in random chunks, then the client half-closes.
 *
 * Oracle: the server closes the connection (a hang is the harness's
 * timeout); no answer has a 500 status; the server's onError is never
 * called; the server stays up (its `finished` does not settle while it
 * serves).
 *
 * @module
 */
import type { PeerCred, ServerConn, ServerListener } from "../../src/net/conn.ts";
import { serveHttp } from "../../src/http/httpd.ts";
import { controlApp } from "./apps.ts";
import { assertClean, concat, expect, Finding, fuzz, loadCorpus, type Rng } from "./lib.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A connection fed from memory; records what the server writes. */
class MemConn implements ServerConn {
  readonly peer: PeerCred | null = { uid: 0, gid: 0, pid: Deno.pid };
  readonly remote = "unix";
  #inbox: Uint8Array[];
  #wake: (() => void) | null = null;
  out: Uint8Array[] = [];
  closed = false;
  onClose: () => void = () => {};
  constructor(chunks: Uint8Array[]) {
    this.#inbox = chunks;
  }
  async read(buf: Uint8Array): Promise<number | null> {
    await Promise.resolve();
    if (this.closed) throw new Deno.errors.BadResource("closed");
    if (this.#inbox.length === 0) return null; // the client half-closed
    const c = this.#inbox[0];
    const n = Math.min(buf.length, c.length);
    buf.set(c.subarray(0, n));
    if (n < c.length) this.#inbox[0] = c.subarray(n);
    else this.#inbox.shift();
    return n;
  }
  async write(buf: Uint8Array): Promise<number> {
    await Promise.resolve();
    if (this.closed) throw new Deno.errors.BrokenPipe("closed");
    this.out.push(buf.slice());
    return buf.length;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const w = this.#wake;
    this.#wake = null;
    w?.();
    this.onClose();
  }
}

/** A listener handed connections one at a time. */
class MemListener implements ServerListener {
  #queue: ServerConn[] = [];
  #wake: (() => void) | null = null;
  closed = false;
  push(c: ServerConn): void {
    this.#queue.push(c);
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }
  async accept(): Promise<ServerConn> {
    while (this.#queue.length === 0 && !this.closed) {
      await new Promise<void>((r) => this.#wake = r);
    }
    if (this.closed) throw new Deno.errors.BadResource("listener closed");
    return this.#queue.shift()!;
  }
  close(): void {
    this.closed = true;
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }
}

/** Header lines worth adding to a request head. */
const HEADER_LINES = [
  "Host: 127.0.0.1",
  "Host: [::1]:8080",
  "Host: a b",
  "Content-Length: 0",
  "Content-Length: 5",
  "Content-Length: 999999999999999",
  "Content-Length: -1",
  "Transfer-Encoding: chunked",
  "Transfer-Encoding: gzip, chunked",
  "Connection: close",
  "Connection: keep-alive",
  "Expect: 100-continue",
  "Expect: nothing",
  " folded",
  "X-Long: " + "a".repeat(9000),
  "content-type: application/json",
];

/** Structure-aware mutation: header lines added or removed, pipelining, version, chunks. */
function mutateWire(rng: Rng, input: Uint8Array, seeds: Uint8Array[]): Uint8Array {
  const text = dec.decode(input);
  const end = text.indexOf("\r\n\r\n");
  if (end < 0 || rng.oneIn(4)) return concat(input, rng.pick(seeds) ?? new Uint8Array()); // pipelined
  const lines = text.slice(0, end).split("\r\n");
  const body = text.slice(end + 4);
  switch (rng.int(4)) {
    case 0:
      lines.splice(1 + rng.int(lines.length), 0, rng.pick(HEADER_LINES));
      break;
    case 1:
      if (lines.length > 1) lines.splice(1 + rng.int(lines.length - 1), 1);
      break;
    case 2:
      lines[0] = lines[0].replace(
        /HTTP\/1\.\d/,
        rng.pick(["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", ""]),
      );
      break;
    default:
      lines[0] = lines[0].replace(
        /^\S+/,
        rng.pick(["GET", "HEAD", "POST", "DELETE", "TRACE", "CONNECT", "get", "X"]),
      );
  }
  return enc.encode(`${lines.join("\r\n")}\r\n\r\n${body}`);
}

Deno.test("fuzz httpd: the HTTP/1.1 server answers raw request bytes without a 500 and stays up", async () => {
  const t = controlApp();
  const errors: string[] = [];
  const l = new MemListener();
  const srv = serveHttp(l, (req, env) => t.app.fetch(req, env), {
    name: "fuzz-httpd",
    onError: (e) => {
      errors.push(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
      return new Response("fuzz onError", { status: 500 });
    },
  });
  let finished = false;
  srv.finished.then(() => finished = true, () => finished = true);
  const run = async (input: Uint8Array, rng: Rng) => {
    // the bytes in random chunks, as a network delivers them
    const chunks: Uint8Array[] = [];
    for (let off = 0; off < input.length;) {
      const n = rng.oneIn(2) ? input.length - off : 1 + rng.int(64);
      chunks.push(input.subarray(off, off + n));
      off += n;
    }
    const c = new MemConn(chunks);
    const closed = new Promise<void>((r) => c.onClose = r);
    l.push(c);
    await closed;
    const out = dec.decode(concat(...c.out));
    if (errors.length > 0) throw new Finding(`httpd onError: ${errors.splice(0).join("; ")}`);
    if (t.errors.length > 0) throw new Finding(`routes onError: ${t.errors.splice(0).join("; ")}`);
    expect(!finished, "the server stopped");
    const statuses = [...out.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => m[1]);
    expect(!statuses.includes("500"), `a 500 answer: ${out.slice(0, 400)}`);
    expect(
      input.length === 0 || statuses.length > 0 || out === "",
      `output without a status line: ${out.slice(0, 200)}`,
    );
    return statuses.length === 0 ? "no answer" : statuses.join(",");
  };
  try {
    const seeds = loadCorpus("httpd").map((c) => c.bytes);
    const r = await fuzz({
      target: "httpd",
      seeds,
      run,
      mutate: (rng, input) => mutateWire(rng, input, seeds),
      maxInput: 256 * 1024,
    });
    assertClean(r);
  } finally {
    await srv.close(500);
    t.cleanup();
  }
});
