import assert from "node:assert/strict";
import type { ServerConn, ServerListener } from "../net/conn.ts";
import { type HttpHandler, type HttpServer, parseHead, Refusal, serveHttp } from "./httpd.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A connection driven by the test: send() bytes in, read what the server wrote. */
class FakeConn implements ServerConn {
  readonly peer = null;
  readonly remote: string;
  #inbox: Uint8Array[] = [];
  #eof = false;
  #wake: (() => void) | null = null;
  out: Uint8Array[] = [];
  closed = false;
  /** writes never complete (a client that does not read) */
  stallWrites = false;
  constructor(remote = "fake") {
    this.remote = remote;
  }
  send(s: string | Uint8Array): void {
    this.#inbox.push(typeof s === "string" ? enc.encode(s) : s);
    this.#poke();
  }
  end(): void {
    this.#eof = true;
    this.#poke();
  }
  #poke() {
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }
  async read(buf: Uint8Array): Promise<number | null> {
    while (this.#inbox.length === 0 && !this.#eof && !this.closed) {
      await new Promise<void>((r) => this.#wake = r);
    }
    if (this.closed) throw new Deno.errors.BadResource("closed");
    if (this.#inbox.length === 0) return null;
    const c = this.#inbox[0];
    const n = Math.min(buf.length, c.length);
    buf.set(c.subarray(0, n));
    if (n < c.length) this.#inbox[0] = c.subarray(n);
    else this.#inbox.shift();
    return n;
  }
  async write(buf: Uint8Array): Promise<number> {
    if (this.closed) throw new Deno.errors.BrokenPipe("closed");
    if (this.stallWrites) {
      while (!this.closed) await new Promise<void>((r) => this.#wake = r);
      throw new Deno.errors.BrokenPipe("closed");
    }
    await Promise.resolve();
    this.out.push(buf.slice());
    return buf.length;
  }
  close(): void {
    this.closed = true;
    this.#poke();
  }
  text(): string {
    return this.out.map((b) => dec.decode(b)).join("");
  }
}

/** A listener the test hands connections (or accept errors) to. */
class FakeListener implements ServerListener {
  #queue: (ServerConn | Error)[] = [];
  #wake: (() => void) | null = null;
  closed = false;
  push(c: ServerConn | Error): void {
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
    const c = this.#queue.shift()!;
    if (c instanceof Error) throw c;
    return c;
  }
  close(): void {
    this.closed = true;
    const w = this.#wake;
    this.#wake = null;
    w?.();
  }
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const echo: HttpHandler = async (req) => {
  const body = req.body ? await req.text() : "";
  return new Response(`${req.method} ${new URL(req.url).pathname} ${body}`, {
    headers: { "content-type": "text/plain" },
  });
};

async function withServer(
  fn: (l: FakeListener, srv: HttpServer) => Promise<void>,
  handler: HttpHandler = echo,
  opts: Parameters<typeof serveHttp>[2] = {},
): Promise<void> {
  const l = new FakeListener();
  const srv = serveHttp(l, handler, { name: "httpd-test", ...opts });
  try {
    await fn(l, srv);
  } finally {
    await srv.close(200);
  }
}

/** Open a connection, send `raw`, wait until the server closes it, return what it wrote. */
async function exchange(l: FakeListener, raw: string): Promise<string> {
  const c = new FakeConn();
  l.push(c);
  c.send(raw);
  await until(() => c.closed, "the server to close the connection");
  return c.text();
}

Deno.test("keep-alive: two pipelined requests on one connection, Content-Length answers", async () => {
  await withServer(async (l) => {
    const c = new FakeConn();
    l.push(c);
    c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => (c.text().match(/HTTP\/1\.1 200/g) ?? []).length === 2, "two answers");
    const t = c.text();
    assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(t, /content-length: 7\r\n\r\nGET \/a HTTP\/1\.1 200 OK/i);
    assert.ok(t.endsWith("GET /b "), t);
    assert.ok(!c.closed, "the connection stays open");
    assert.ok(!/connection: close/i.test(t));
    c.end(); // client closes between requests: the server closes cleanly
    await until(() => c.closed, "close after EOF");
  });
});

Deno.test("Connection: close and HTTP/1.0 close after the answer", async () => {
  await withServer(async (l) => {
    const t = await exchange(l, "GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.match(t, /connection: close\r\n/);
    assert.ok(t.endsWith("GET /c "));
    const t0 = await exchange(l, "GET /d HTTP/1.0\r\n\r\n");
    assert.match(t0, /^HTTP\/1\.1 200 OK/);
    assert.ok(t0.endsWith("GET /d "));
  });
});

Deno.test("HEAD gets the headers and Content-Length of GET, no body", async () => {
  await withServer(async (l) => {
    const c = new FakeConn();
    l.push(c);
    c.send("HEAD /abc HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => c.text().includes("\r\n\r\n"), "the head");
    await new Promise((r) => setTimeout(r, 20));
    const t = c.text();
    assert.match(t, /content-length: 9\r\n/); // "HEAD /abc " is what GET would have sent
    assert.ok(t.endsWith("\r\n\r\n"), "no body after the head");
  }, (req) => new Response(`${req.method === "HEAD" ? "GET" : "?"} /abc `));
});

Deno.test("a POST body reaches the handler; over maxBodyBytes is 413", async () => {
  await withServer(
    async (l) => {
      const ok = await exchange(
        l,
        "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
      );
      assert.ok(ok.endsWith("POST /p hello"), ok);
      const big = await exchange(l, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n");
      assert.match(big, /^HTTP\/1\.1 413 /);
      assert.match(big, /connection: close/);
    },
    echo,
    { maxBodyBytes: 10 },
  );
});

Deno.test("bad heads are 400 and close the connection", async () => {
  const bad: [string, string][] = [
    ["garbage", "hello\r\n\r\n"],
    ["bare LF", "GET / HTTP/1.1\nHost: x\n\n"],
    ["obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  2\r\n\r\n"],
    [
      "duplicate Content-Length",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\na",
    ],
    [
      "CL + TE",
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ["no Host", "GET / HTTP/1.1\r\n\r\n"],
    ["two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"],
    ["absolute-form target", "GET http://evil/ HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["HTTP/2 version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n"],
    ["space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n"],
    ["negative length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"],
    ["non-ASCII", "GET /\u00e9 HTTP/1.1\r\nHost: x\r\n\r\n"],
    ["bad Host", "GET / HTTP/1.1\r\nHost: a/b@c\r\n\r\n"],
    ["double space", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n"],
  ];
  let calls = 0;
  await withServer(async (l, srv) => {
    for (const [what, raw] of bad) {
      const t = await exchange(l, raw);
      assert.match(t, /^HTTP\/1\.1 400 Bad Request\r\n/, what);
      assert.match(t, /connection: close/, what);
    }
    assert.equal(calls, 0, "the handler never saw a bad request");
    assert.equal(srv.stats().refused["400"], bad.length);
  }, () => {
    calls++;
    return new Response("no");
  });
});

Deno.test("chunked request bodies are 411, other codings 501, unknown Expect 417", async () => {
  await withServer(async (l) => {
    const te = await exchange(
      l,
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert.match(te, /^HTTP\/1\.1 411 /);
    const gz = await exchange(l, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n");
    assert.match(gz, /^HTTP\/1\.1 501 /);
    const ex = await exchange(l, "POST / HTTP/1.1\r\nHost: x\r\nExpect: magic\r\n\r\n");
    assert.match(ex, /^HTTP\/1\.1 417 /);
  });
});

Deno.test("Expect: 100-continue gets an interim answer before the body is read", async () => {
  await withServer(async (l) => {
    const c = new FakeConn();
    l.push(c);
    c.send("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    await until(() => c.text().includes("100 Continue"), "the interim answer");
    c.send("ok");
    await until(() => c.text().endsWith("POST /e ok"), "the answer");
  });
});

Deno.test("a head over maxHeadBytes is 431, also when it never ends", async () => {
  await withServer(
    async (l) => {
      const t = await exchange(l, `GET / HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(2000)}\r\n\r\n`);
      assert.match(t, /^HTTP\/1\.1 431 /);
      const endless = await exchange(l, `GET /${"a".repeat(5000)}`);
      assert.match(endless, /^HTTP\/1\.1 431 /);
    },
    echo,
    { maxHeadBytes: 1024 },
  );
});

Deno.test("too many header fields is 431", async () => {
  await withServer(
    async (l) => {
      const t = await exchange(l, `GET / HTTP/1.1\r\nHost: x\r\n${"A: b\r\n".repeat(6)}\r\n`);
      assert.match(t, /^HTTP\/1\.1 431 /);
    },
    echo,
    { maxHeaders: 5 },
  );
});

Deno.test("parseHead: keep-alive rules and Content-Length", () => {
  const h = parseHead(enc.encode("PUT /x?y=1 HTTP/1.1\r\nHost: h:1\r\nContent-Length: 12"));
  assert.equal(h.method, "PUT");
  assert.equal(h.target, "/x?y=1");
  assert.equal(h.contentLength, 12);
  assert.equal(h.keepAlive, true);
  assert.equal(parseHead(enc.encode("GET / HTTP/1.0")).keepAlive, false);
  assert.equal(
    parseHead(enc.encode("GET / HTTP/1.0\r\nConnection: Keep-Alive")).keepAlive,
    true,
  );
  assert.equal(
    parseHead(enc.encode("GET / HTTP/1.1\r\nHost: a\r\nConnection: x, close")).keepAlive,
    false,
  );
  // header names that look like Object.prototype keys are plain headers
  const p = parseHead(enc.encode("GET / HTTP/1.1\r\nHost: a\r\n__proto__: 1\r\nconstructor: 2"));
  assert.deepEqual(p.headers.map(([k]) => k), ["Host", "__proto__", "constructor"]);
});

Deno.test("a head that dribbles in is closed by the header timeout", async () => {
  await withServer(
    async (l, srv) => {
      const c = new FakeConn();
      l.push(c);
      const dribble = setInterval(() => c.closed || c.send("X"), 20);
      try {
        c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
        await until(() => c.closed, "the header timeout");
      } finally {
        clearInterval(dribble);
      }
      assert.equal(c.text(), "", "nothing is answered to a head that never completed");
      assert.equal(srv.stats().timeouts.head, 1);
    },
    echo,
    { headerTimeoutMs: 150 },
  );
});

Deno.test("an idle keep-alive connection is closed by the idle timeout", async () => {
  await withServer(
    async (l, srv) => {
      const c = new FakeConn();
      l.push(c);
      c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await until(() => c.text().includes("200 OK"), "the answer");
      await until(() => c.closed, "the idle timeout");
      assert.equal(srv.stats().timeouts.idle, 1);
    },
    echo,
    { idleTimeoutMs: 100 },
  );
});

Deno.test("a body that does not arrive is closed by the body timeout", async () => {
  await withServer(
    async (l, srv) => {
      const c = new FakeConn();
      l.push(c);
      c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc");
      await until(() => c.closed, "the body timeout");
      assert.equal(srv.stats().timeouts.body, 1);
    },
    echo,
    { bodyTimeoutMs: 100 },
  );
});

Deno.test("a client that never reads its answer is closed by the write timeout", async () => {
  await withServer(
    async (l, srv) => {
      const c = new FakeConn();
      c.stallWrites = true;
      l.push(c);
      c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await until(() => c.closed, "the write timeout");
      assert.equal(srv.stats().timeouts.write, 1);
    },
    echo,
    { writeTimeoutMs: 100 },
  );
});

Deno.test("at the cap the oldest idle or head-reading connection is evicted, never one mid-response", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const handler: HttpHandler = async (req) => {
    if (new URL(req.url).pathname === "/slow") await gate;
    return new Response("ok");
  };
  await withServer(
    async (l, srv) => {
      const busy = new FakeConn("busy");
      l.push(busy);
      busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
      const idle = new FakeConn("idle");
      l.push(idle);
      idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await until(() => idle.text().includes("200 OK"), "the idle one's answer");
      await new Promise((r) => setTimeout(r, 5));
      const reading = new FakeConn("reading");
      l.push(reading);
      reading.send("GET / HTT");
      await until(() => srv.stats().connections === 3, "three connections");

      const fresh = new FakeConn("fresh");
      l.push(fresh);
      await until(() => idle.closed, "the idle one (oldest spare) evicted");
      assert.ok(!busy.closed && !reading.closed);
      const fresh2 = new FakeConn("fresh2");
      l.push(fresh2);
      await until(() => reading.closed, "the head-reading one evicted next");
      assert.ok(!busy.closed && !fresh.closed);
      // a well-behaved client still gets through: fresh2 asks and is answered
      fresh2.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await until(() => fresh2.text().includes("200 OK"), "fresh2 answered");
      assert.equal(srv.stats().evicted_total, 2);
      assert.equal(srv.stats().connections, 3);
      release();
      await until(() => busy.text().includes("200 OK"), "the busy one answered");
    },
    handler,
    { maxConnections: 3 },
  );
});

Deno.test("a streamed text/event-stream body goes out chunked, chunk by chunk", async () => {
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const body = new ReadableStream<Uint8Array>({ start: (c) => void (ctl = c) });
  await withServer(async (l) => {
    const c = new FakeConn();
    l.push(c);
    c.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    ctl.enqueue(enc.encode("hello"));
    await until(() => c.text().endsWith("5\r\nhello\r\n"), "the first chunk");
    assert.match(c.text(), /transfer-encoding: chunked\r\n/);
    assert.doesNotMatch(c.text(), /content-length/);
    ctl.enqueue(enc.encode("data: 1\n\n"));
    await until(() => c.text().endsWith("9\r\ndata: 1\n\n\r\n"), "the second chunk");
    ctl.close();
    await until(() => c.text().endsWith("0\r\n\r\n"), "the last chunk");
    assert.ok(!c.closed, "keep-alive after a finished stream");
  }, () => new Response(body, { headers: { "content-type": "text/event-stream" } }));
});

Deno.test("a stream that fails mid-response cuts the connection; a throwing handler is 500", async () => {
  let ctl!: ReadableStreamDefaultController<Uint8Array>;
  const errors: unknown[] = [];
  await withServer(async (l) => {
    const c = new FakeConn();
    l.push(c);
    c.send("GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
    await until(() => ctl !== undefined, "the handler");
    ctl.enqueue(enc.encode("x"));
    await until(() => c.text().endsWith("1\r\nx\r\n"), "the first chunk");
    ctl.error(new Error("dropped"));
    await until(() => c.closed, "the cut");
    assert.ok(!c.text().endsWith("0\r\n\r\n"), "no clean end of a failed stream");
    const t = await exchange(
      l,
      "GET /throw HTTP/1.1\r\nHost: x\r\n\r\n".replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n"),
    );
    assert.match(t, /^HTTP\/1\.1 500 /);
    assert.equal(errors.length, 2);
  }, (req) => {
    if (new URL(req.url).pathname === "/throw") throw new Error("boom");
    return new Response(new ReadableStream({ start: (c) => void (ctl = c) }), {
      headers: { "content-type": "text/event-stream" },
    });
  }, {
    onError: (e) => {
      errors.push(e);
      return new Response("internal", { status: 500 });
    },
  });
});

Deno.test("accept errors back off and never end the loop; a closed listener ends it", async () => {
  const l = new FakeListener();
  const srv = serveHttp(l, echo, { name: "httpd-test" });
  const emfile = new Error("Too many open files (os error 24)");
  l.push(emfile);
  l.push(new Error("Too many open files in system (os error 23)"));
  l.push(new Error("Software caused connection abort (os error 103)"));
  const c = new FakeConn();
  l.push(c);
  c.send("GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  await until(() => c.closed, "the answer after the errors");
  assert.ok(c.text().endsWith("GET /after "));
  assert.equal(srv.stats().accept_errors, 3);
  l.close();
  await srv.finished; // the loop ended by itself
  await srv.close();
});

Deno.test("EMFILE frees a descriptor by evicting the oldest idle connection", async () => {
  await withServer(async (l, srv) => {
    const idle = new FakeConn();
    l.push(idle);
    await until(() => srv.stats().connections === 1, "one connection");
    l.push(new Error("Too many open files (os error 24)"));
    await until(() => idle.closed, "the eviction");
    assert.equal(srv.stats().evicted_total, 1);
  });
});

Deno.test("close() closes idle connections, waits for a response in flight, then forces", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const l = new FakeListener();
  const srv = serveHttp(l, async () => {
    await gate;
    return new Response("late");
  }, { name: "httpd-test" });
  const idle = new FakeConn();
  l.push(idle);
  const busy = new FakeConn();
  l.push(busy);
  busy.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await until(() => srv.stats().connections === 2 && srv.stats().requests_total === 1, "setup");
  const closed = srv.close(100);
  await until(() => idle.closed, "idle closed at once");
  assert.ok(!busy.closed, "the response in flight gets its time");
  await closed;
  assert.ok(busy.closed, "forced after the timeout");
  assert.ok(l.closed);
  release();
  await srv.close(); // twice is fine
});

Deno.test("a response in flight when close() starts is finished with Connection: close", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const l = new FakeListener();
  const srv = serveHttp(l, async () => {
    await gate;
    return new Response("done");
  }, { name: "httpd-test" });
  const c = new FakeConn();
  l.push(c);
  c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  await until(() => srv.stats().requests_total === 1, "the request");
  const closed = srv.close(2000);
  release();
  await closed;
  assert.match(c.text(), /connection: close\r\n\r\ndone$/);
});

Deno.test("options are checked", () => {
  assert.throws(() => serveHttp(new FakeListener(), echo, { maxConnections: 0 }), /maxConnections/);
  assert.throws(
    () => serveHttp(new FakeListener(), echo, { headerTimeoutMs: -1 }),
    /headerTimeoutMs/,
  );
});

Deno.test("a head and a body that arrive a byte at a time are read whole", async () => {
  await withServer(async (l) => {
    const c = new FakeConn();
    l.push(c);
    const raw = `POST /bytes HTTP/1.1\r\nHost: x\r\nX-Pad: ${"p".repeat(3000)}\r\n` +
      `Content-Length: 4000\r\nConnection: close\r\n\r\n${"b".repeat(4000)}`;
    for (const ch of raw) c.send(ch);
    await until(() => c.closed, "the answer");
    assert.ok(c.text().endsWith(`POST /bytes ${"b".repeat(4000)}`));
  });
});

Deno.test("HEAD answered with a null body keeps the stated Content-Length, or sends none", async () => {
  await withServer(async (l) => {
    const t = await exchange(l, "HEAD /stated HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(t, /content-length: 42\r\n/);
    const n = await exchange(l, "HEAD /none HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert.doesNotMatch(n, /content-length/);
    assert.ok(n.endsWith("\r\n\r\n"));
  }, (req) =>
    new Response(null, {
      headers: new URL(req.url).pathname === "/stated" ? { "content-length": "42" } : {},
    }));
});

Deno.test("parseHead: absolute-form targets become origin-form; their host must be the Host header", () => {
  const h = parseHead(enc.encode("GET http://aegisbpf/health?x=1 HTTP/1.1\r\nHost: aegisbpf"));
  assert.equal(h.target, "/health?x=1");
  assert.equal(h.host, "aegisbpf");
  assert.equal(parseHead(enc.encode("GET http://a HTTP/1.1\r\nHost: a")).target, "/");
  assert.equal(parseHead(enc.encode("GET http://a?q HTTP/1.1\r\nHost: A")).target, "/?q");
  // HTTP/1.0 without Host: the target's authority is the host
  assert.equal(parseHead(enc.encode("GET http://127.0.0.1:80/x HTTP/1.0")).host, "127.0.0.1:80");
  for (
    const bad of [
      "GET http://evil.example/x HTTP/1.1\r\nHost: localhost", // authority differs from Host
      "GET http://u@localhost/x HTTP/1.1\r\nHost: localhost", // userinfo
      "GET https://localhost/x HTTP/1.1\r\nHost: localhost", // not http
      "GET http:///x HTTP/1.1\r\nHost: localhost", // empty authority
    ]
  ) {
    assert.throws(
      () => parseHead(enc.encode(bad)),
      (e) => e instanceof Refusal && e.status === 400,
    );
  }
});
