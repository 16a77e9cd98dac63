/**
 * The shim's unix listener (src/native/unix_listener.ts, ffi/aegis_sock.c):
 * kernel peer credentials, socket mode before listen, close waking waiting
 * calls, the bound on calls waiting in C, no fd leak, RLIMIT_NOFILE.
 */
import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import { NativeCallError } from "../../src/errors.ts";
import { Shim } from "../../src/native/shim.ts";
import { raiseNofileLimit, UnixListener } from "../../src/native/unix_listener.ts";
import { SHIM_SO } from "../lib/helpers.ts";

const isRoot = Deno.uid() === 0;

function openFds(): number {
  return [...Deno.readDirSync("/proc/self/fd")].length;
}

async function withListener(
  opts: { mode?: number; maxBlocked?: number; sliceMs?: number; dirMode?: number },
  f: (l: UnixListener, path: string, shim: Shim) => Promise<void>,
): Promise<void> {
  const shim = Shim.open(SHIM_SO);
  const dir = Deno.makeTempDirSync({ prefix: "aegis-ul-" });
  Deno.chmodSync(dir, opts.dirMode ?? 0o700);
  const path = `${dir}/s.sock`;
  const l = UnixListener.listen(shim, path, opts);
  try {
    await f(l, path, shim);
  } finally {
    l.close();
    await l.drained();
    shim.close();
    Deno.removeSync(dir, { recursive: true });
  }
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  return new TextDecoder().decode(new Uint8Array(parts.flatMap((p) => [...p])));
}

Deno.test("accept gives the peer's pid/uid/gid from the kernel; bytes flow both ways", async () => {
  const before = openFds();
  await withListener({}, async (l, path) => {
    strictEqual(Deno.lstatSync(path).mode! & 0o777, 0o600);
    const client = await Deno.connect({ transport: "unix", path });
    const conn = await l.accept();
    deepStrictEqual(conn.peer, { pid: Deno.pid, uid: Deno.uid(), gid: Deno.gid() });
    strictEqual(conn.remote, "unix");
    await client.write(new TextEncoder().encode("ping"));
    const buf = new Uint8Array(16);
    const n = await conn.read(buf);
    strictEqual(new TextDecoder().decode(buf.subarray(0, n!)), "ping");
    strictEqual(await conn.write(new TextEncoder().encode("pong")), 4);
    conn.close();
    conn.close(); // twice is fine
    strictEqual(await readAll(client), "pong");
    client.close();
    await rejects(conn.read(buf), /closed/);
  });
  strictEqual(openFds(), before, "every fd the listener opened is closed");
});

Deno.test({
  name: "an unprivileged peer is reported with its own uid and pid, whatever it claims",
  ignore: !isRoot,
  fn: async () => {
    await withListener({ mode: 0o666, dirMode: 0o755 }, async (l, path) => {
      const child = new Deno.Command("setpriv", {
        args: [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "/usr/bin/python3",
          "-c",
          "import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect(sys.argv[1]);" +
          "s.sendall(b'x-aegis-caller-uid: 0\\n');s.recv(1)",
          path,
        ],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const conn = await l.accept();
      deepStrictEqual(conn.peer, { pid: child.pid, uid: 65534, gid: 65534 });
      const buf = new Uint8Array(64);
      const n = await conn.read(buf);
      ok(new TextDecoder().decode(buf.subarray(0, n!)).startsWith("x-aegis-caller-uid: 0"));
      conn.close();
      const st = await child.output();
      strictEqual(st.code, 0, new TextDecoder().decode(st.stderr));
    });
  },
});

Deno.test({
  name: "the 0600 socket refuses an unprivileged connect (EACCES)",
  ignore: !isRoot,
  fn: async () => {
    await withListener({ dirMode: 0o755 }, async (_l, path) => {
      const r = await new Deno.Command("setpriv", {
        args: [
          "--reuid=65534",
          "--regid=65534",
          "--clear-groups",
          "/usr/bin/python3",
          "-c",
          "import socket,sys;socket.socket(socket.AF_UNIX).connect(sys.argv[1])",
          path,
        ],
        stdout: "null",
        stderr: "piped",
      }).output();
      strictEqual(r.code, 1);
      ok(new TextDecoder().decode(r.stderr).includes("PermissionError"));
    });
  },
});

Deno.test("close wakes a read and an accept waiting in C (long slice)", async () => {
  await withListener({ sliceMs: 60_000 }, async (l, path) => {
    const client = await Deno.connect({ transport: "unix", path });
    const conn = await l.accept();
    const pendingRead = conn.read(new Uint8Array(8));
    const pendingAccept = l.accept();
    // both are in C now (the gate counts them)
    while (l.blockedCalls < 2) await new Promise((r) => setTimeout(r, 5));
    conn.close();
    await rejects(pendingRead, /connection is closed/);
    l.close();
    await rejects(pendingAccept, /listener is closed/);
    client.close();
  });
});

Deno.test("at most maxBlocked calls wait in C; the rest queue and complete", async () => {
  await withListener({ maxBlocked: 2 }, async (l, path) => {
    const clients: Deno.Conn[] = [];
    const conns = [];
    for (let i = 0; i < 5; i++) {
      clients.push(await Deno.connect({ transport: "unix", path }));
      conns.push(await l.accept());
    }
    const bufs = conns.map(() => new Uint8Array(8));
    const reads = conns.map((c, i) => c.read(bufs[i]));
    while (l.blockedCalls < 2) await new Promise((r) => setTimeout(r, 5));
    strictEqual(l.blockedCalls, 2);
    for (const [i, c] of clients.entries()) await c.write(new Uint8Array([i + 1]));
    deepStrictEqual(await Promise.all(reads), [1, 1, 1, 1, 1]);
    deepStrictEqual(bufs.map((b) => b[0]), [1, 2, 3, 4, 5]);
    for (const c of conns) c.close();
    for (const c of clients) c.close();
  });
});

Deno.test("a read sees end of stream when the peer closes; a write to a gone peer is EPIPE, no signal", async () => {
  await withListener({}, async (l, path) => {
    const client = await Deno.connect({ transport: "unix", path });
    const conn = await l.accept();
    client.close();
    strictEqual(await conn.read(new Uint8Array(8)), null);
    await rejects(async () => {
      for (;;) await conn.write(new Uint8Array(65536));
    }, (e) => e instanceof NativeCallError && (e.errno === 32 || e.errno === 104)); // EPIPE, ECONNRESET
    conn.close();
  });
});

Deno.test("listen refuses an existing path (EADDRINUSE), a too long path and bad options", () => {
  const shim = Shim.open(SHIM_SO);
  const dir = Deno.makeTempDirSync({ prefix: "aegis-ul-" });
  try {
    const path = `${dir}/s.sock`;
    Deno.writeTextFileSync(path, "");
    // errno 98 is EADDRINUSE
    throws(() => UnixListener.listen(shim, path), /\(98\)/);
    throws(() => UnixListener.listen(shim, `${dir}/${"x".repeat(120)}`), /ENAMETOOLONG/);
    throws(() => UnixListener.listen(shim, `${dir}/a\0b`), /NUL byte/);
    throws(() => UnixListener.listen(shim, `${dir}/b`, { maxBlocked: 0 }), /maxBlocked/);
    throws(() => UnixListener.listen(shim, `${dir}/b`, { sliceMs: -1 }), /sliceMs/);
  } finally {
    shim.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("raiseNofileLimit raises the soft limit to the hard limit, never lowers it", () => {
  const shim = Shim.open(SHIM_SO);
  try {
    const r = raiseNofileLimit(shim);
    ok(r.newSoft >= r.oldSoft, JSON.stringify(r));
    ok(r.newSoft <= r.hard, JSON.stringify(r));
    const limits = Deno.readTextFileSync("/proc/self/limits");
    const m = /^Max open files\s+(\d+)\s+(\d+|unlimited)/m.exec(limits);
    ok(m, limits);
    strictEqual(Number(m[1]), r.newSoft);
    if (m[2] !== "unlimited") strictEqual(r.newSoft, Number(m[2]));
    // a lower target changes nothing
    const again = raiseNofileLimit(shim, 16);
    strictEqual(again.newSoft, r.newSoft);
  } finally {
    shim.close();
  }
});

/**
 * Accepts until EMFILE under a low RLIMIT_NOFILE and says so ("emfile N");
 * on "go" from stdin frees five fds and accepts once more.
 */
const EMFILE_CHILD = `
import { Shim } from "${new URL("../../src/native/shim.ts", import.meta.url).pathname}";
import { UnixListener } from "${
  new URL("../../src/native/unix_listener.ts", import.meta.url).pathname
}";
const [so, path] = Deno.args;
const shim = Shim.open(so);
const l = UnixListener.listen(shim, path, { sliceMs: 200 });
const say = (s) => Deno.stdout.writeSync(new TextEncoder().encode(s + "\\n"));
say("listening");
const conns = [];
let err = null;
for (;;) {
  try {
    conns.push(await l.accept());
  } catch (e) {
    err = { errno: e.errno, message: e.message };
    break;
  }
}
const held = conns.length;
say("emfile " + held);
await Deno.stdin.read(new Uint8Array(8));
for (const c of conns.splice(0, 5)) c.close();
const again = await l.accept();
say(JSON.stringify({ held, err, again: again.peer !== null }));
again.close();
for (const c of conns) c.close();
l.close();
await l.drained();
shim.close();
`;

Deno.test({
  name:
    "accept under RLIMIT_NOFILE exhaustion rejects with EMFILE, and works again once fds are free",
  ignore: !isRoot,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "aegis-ul-" });
    const clients: Deno.Conn[] = [];
    const child = new Deno.Command("prlimit", {
      args: [
        "--nofile=96:96",
        Deno.execPath(),
        "run",
        "-A",
        "--no-check",
        `${dir}/child.ts`,
        SHIM_SO,
        `${dir}/s.sock`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
    Deno.writeTextFileSync(`${dir}/child.ts`, EMFILE_CHILD);
    const proc = child.spawn();
    // a hang fails the test within a minute instead of stalling the suite
    const guard = setTimeout(() => proc.kill("SIGKILL"), 60_000);
    try {
      const lines = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = "";
      const nextLine = async (): Promise<string | null> => {
        while (!buffered.includes("\n")) {
          const r = await lines.read();
          if (r.done) return null;
          buffered += r.value;
        }
        const i = buffered.indexOf("\n");
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        return line;
      };
      strictEqual(await nextLine(), "listening");
      const emfile = nextLine();
      let said: string | null | undefined;
      emfile.then((l) => said = l);
      // connect until the child reports EMFILE; a full accept queue is retried
      while (said === undefined) {
        try {
          clients.push(await Deno.connect({ transport: "unix", path: `${dir}/s.sock` }));
        } catch (e) {
          ok(e instanceof Deno.errors.WouldBlock, String(e));
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      ok(said?.startsWith("emfile "), String(said));
      // one more connection waits in the queue (a full queue already holds one)
      try {
        clients.push(await Deno.connect({ transport: "unix", path: `${dir}/s.sock` }));
      } catch (e) {
        ok(e instanceof Deno.errors.WouldBlock, String(e));
      }
      const w = proc.stdin.getWriter();
      await w.write(new TextEncoder().encode("go\n"));
      await w.close();
      const text = await nextLine();
      const st = await proc.status;
      const err = new TextDecoder().decode(await new Response(proc.stderr).arrayBuffer());
      strictEqual(st.code, 0, `child exit ${st.code} signal ${st.signal}: ${err}`);
      const res = JSON.parse(text ?? "null");
      ok(res.held > 0 && res.held < 96, text ?? "");
      strictEqual(res.err.errno, 24, text ?? ""); // EMFILE
      strictEqual(res.again, true, text ?? "");
    } finally {
      clearTimeout(guard);
      for (const c of clients) c.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
