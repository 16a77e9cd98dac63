/**
 * Host tier (root): the control socket for real — mode 0600 in a 0700
 * root-owned runtime dir, stale socket replaced, a live one refused,
 * requests over the socket with daemonRequest (caller recorded from the
 * kernel's SO_PEERCRED, whatever headers claim), and emergency toggles from several processes serialised by the
 * lock (the log holds exactly the transitions, every line whole).
 */
import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import { Hono } from "hono";
import { createControlApp } from "../../src/control/app.ts";
import { daemonRequest, withDaemon } from "../../src/control/client.ts";
import { EmergencyControl } from "../../src/control/emergency.ts";
import { startControlServer } from "../../src/control/server.ts";
import { FakeFlag } from "../../src/control/control_testing.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** One request written by hand on the socket; status and body text of the reply. */
async function rawRequest(
  sock: string,
  method: string,
  path: string,
  body: string,
  extraHeaders = "",
): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ transport: "unix", path: sock });
  try {
    const bytes = new TextEncoder().encode(body);
    await conn.write(
      new TextEncoder().encode(
        `${method} ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n${extraHeaders}` +
          `content-length: ${bytes.length}\r\n\r\n`,
      ),
    );
    // the server may answer 413 before reading the whole body
    await conn.write(bytes).catch(() => 0);
    const text = new TextDecoder().decode(
      new Uint8Array(await new Response(conn.readable).arrayBuffer()),
    );
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);
    return { status, body: text.slice(text.indexOf("\r\n\r\n") + 4) };
  } finally {
    try {
      conn.close();
    } catch { /* closed by the readable */ }
  }
}

function tempRoot(): string {
  const d = Deno.makeTempDirSync({ prefix: "aegis-ctl-host-" });
  Deno.chmodSync(d, 0o700);
  return d;
}

Deno.test("control socket: 0600 in a 0700 dir, requests work, caller recorded, removed on close", async () => {
  const base = tempRoot();
  try {
    const flag = new FakeFlag();
    const emergency = new EmergencyControl({ stateDir: `${base}/state`, flag, nodeName: "h" });
    const sock = `${base}/run/control.sock`;
    const srv = await startControlServer(createControlApp({ emergency }), sock);
    try {
      strictEqual(Deno.statSync(`${base}/run`).mode! & 0o777, 0o700);
      strictEqual(Deno.statSync(`${base}/run`).uid, 0);
      const st = Deno.lstatSync(sock);
      ok(st.isSocket);
      strictEqual(st.mode! & 0o777, 0o600);

      const d = await daemonRequest("POST", "/emergency/disable", { reason: "host test" }, sock);
      strictEqual(d?.status, 200);
      strictEqual((d!.body as { changed: boolean }).changed, true);
      strictEqual(flag.value, true);
      const s = await daemonRequest("GET", "/emergency/status", undefined, sock);
      strictEqual(s?.status, 200);
      const body = s!.body as { active: boolean; changed_by: { uid: number; pid: number } };
      strictEqual(body.active, true);
      deepStrictEqual(
        body.changed_by,
        { uid: 0, pid: Deno.pid, source: "kernel" },
        "caller from the kernel (SO_PEERCRED)",
      );
      const bad = await daemonRequest("POST", "/emergency/enable", { reason: 1 }, sock);
      strictEqual(bad?.status, 400);
      strictEqual((bad!.body as { code: string }).code, "BAD_REQUEST");
      const nf = await daemonRequest("DELETE", "/emergency/status", undefined, sock);
      strictEqual(nf?.status, 405);

      // raw bytes on the socket: a body larger than 64 KiB
      const big = JSON.stringify({ reason: "z".repeat(100_000) });
      const r = await rawRequest(sock, "POST", "/emergency/enable", big);
      strictEqual(r.status, 413);
      match(r.body, /BODY_TOO_LARGE/);
      // a claimed identity in headers is not the caller
      const claimed = await rawRequest(
        sock,
        "POST",
        "/emergency/enable",
        JSON.stringify({ reason: "claims" }),
        "x-aegis-caller-uid: 1234\r\nx-aegis-caller-pid: 1\r\n",
      );
      strictEqual(claimed.status, 200);
      const after = (await daemonRequest("GET", "/emergency/status", undefined, sock))!
        .body as { changed_by: unknown };
      deepStrictEqual(after.changed_by, { uid: 0, pid: Deno.pid, source: "kernel" });
      // put it back for the checks below
      const again = await daemonRequest("POST", "/emergency/disable", { reason: "x" }, sock);
      strictEqual(again?.status, 200);
      strictEqual(flag.value, true, "nothing changed by the bad requests");
    } finally {
      await srv.close();
    }
    let gone = false;
    try {
      Deno.lstatSync(sock);
    } catch {
      gone = true;
    }
    ok(gone, "socket removed on close");
    strictEqual(await daemonRequest("GET", "/emergency/status", undefined, sock), null);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("control socket: the CLI client reads large (chunked) and empty replies whole", async () => {
  const base = tempRoot();
  try {
    const big = "m".repeat(3 << 20); // over httpd's buffered-response size: sent chunked
    const extra = new Hono();
    extra.get("/big", (c) => c.text(big));
    extra.delete("/empty", (c) => c.body(null, 204));
    const app = createControlApp({
      emergency: new EmergencyControl({ stateDir: `${base}/state`, flag: new FakeFlag() }),
      mounts: { "/x": extra },
    });
    const sock = `${base}/run/control.sock`;
    const srv = await startControlServer(app, sock);
    try {
      const text = await withDaemon("GET", "/x/big", undefined, (r) => r.text(), sock);
      strictEqual(text?.length, big.length);
      strictEqual(text, big);
      const st = await withDaemon(
        "DELETE",
        "/x/empty",
        undefined,
        (r) => Promise.resolve(r.status),
        sock,
      );
      strictEqual(st, 204);
      await rejects(
        withDaemon("GET", "/x/big\r\nhost: y", undefined, (r) => r.text(), sock),
        /bad control request path/,
      );
    } finally {
      await srv.close();
    }
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("control socket: 200 idle connections do not lock out a request (cap 16, oldest evicted)", async () => {
  const base = tempRoot();
  try {
    const flag = new FakeFlag();
    const app = createControlApp({
      emergency: new EmergencyControl({ stateDir: `${base}/state`, flag, nodeName: "h" }),
    });
    const sock = `${base}/run/control.sock`;
    const srv = await startControlServer(app, sock);
    const idle: Deno.Conn[] = [];
    try {
      for (let i = 0; i < 200; i++) {
        let c: Deno.Conn;
        try {
          c = await Deno.connect({ transport: "unix", path: sock });
        } catch (e) {
          // the kernel's accept queue is full for a moment: that is backpressure, not a failure
          ok(e instanceof Deno.errors.WouldBlock, String(e));
          continue;
        }
        // half a request head, never finished (slowloris)
        await c.write(new TextEncoder().encode("GET /emergency/status HTTP/1.1\r\n"));
        idle.push(c);
      }
      const r = await daemonRequest("POST", "/emergency/disable", { reason: "flood" }, sock);
      strictEqual(r?.status, 200);
      strictEqual(flag.value, true);
      const s = (await daemonRequest("GET", "/emergency/status", undefined, sock))!.body as {
        changed_by: unknown;
      };
      deepStrictEqual(s.changed_by, { uid: 0, pid: Deno.pid, source: "kernel" });
    } finally {
      for (const c of idle) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await srv.close();
    }
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

Deno.test("control socket: a stale socket file is replaced, a live one refuses, a bad dir refuses", async () => {
  const base = tempRoot();
  try {
    const app = createControlApp({
      emergency: new EmergencyControl({
        stateDir: `${base}/state`,
        flag: new FakeFlag(),
        nodeName: "h",
      }),
    });
    Deno.mkdirSync(`${base}/run`, { mode: 0o700 });
    const sock = `${base}/run/control.sock`;
    // a stale socket: bound by a listener that is gone
    const py = await new Deno.Command("python3", {
      args: ["-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])", sock],
    }).output();
    strictEqual(py.code, 0);
    ok(Deno.lstatSync(sock).isSocket, "stale socket file left behind");
    strictEqual(await daemonRequest("GET", "/emergency/status", undefined, sock), null);
    const srv = await startControlServer(app, sock);
    try {
      strictEqual((await daemonRequest("GET", "/emergency/status", undefined, sock))?.status, 200);
      await rejects(startControlServer(app, sock), /another agent is running/);
      strictEqual(
        (await daemonRequest("GET", "/emergency/status", undefined, sock))?.status,
        200,
        "the live server kept its socket",
      );
    } finally {
      await srv.close();
    }
    // a regular file where the socket goes is never deleted
    Deno.writeTextFileSync(sock, "not a socket");
    await rejects(startControlServer(app, sock), /not a socket; refusing to replace it/);
    strictEqual(Deno.readTextFileSync(sock), "not a socket");
    Deno.removeSync(sock);
    // unsafe runtime dirs
    Deno.chmodSync(`${base}/run`, 0o755);
    await rejects(startControlServer(app, sock), /runtime directory .* mode 0755/s);
    Deno.chmodSync(`${base}/run`, 0o700);
    Deno.chownSync(`${base}/run`, 65534, null);
    await rejects(startControlServer(app, sock), /owned by uid 65534/);
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});

/**
 * A child process setting the flag N times on a shared state dir; the flag is
 * a file, changed only under the lock. A always asks for "on", B for "off", so
 * a call changes the flag only when the other child changed it since: the
 * no-ops (a child asking twice in a row) must not be logged, and each child's
 * changes depend on the other's (a child that read the flag before taking the
 * lock and asked for its opposite could lose every race in lockstep; that is
 * scheduling, not a lost update).
 */
const CHILD = `
import { EmergencyControl } from "${ROOT}src/control/emergency.ts";
const [dir, who, n, other] = Deno.args;
// start together: each says it is ready, then waits for the other (a slow start on a loaded
// machine must not let one process finish before the other begins)
Deno.writeTextFileSync(dir + "/ready-" + who, "");
const until = Date.now() + 60000;
while (true) {
  try {
    Deno.statSync(dir + "/ready-" + other);
    break;
  } catch {
    if (Date.now() > until) throw new Error("the other process never became ready");
    await new Promise((r) => setTimeout(r, 1));
  }
}
const flagPath = dir + "/flag";
const flag = {
  get: () => Deno.readTextFileSync(flagPath) === "1",
  set: (on) => Deno.writeTextFileSync(flagPath, on ? "1" : "0"),
};
const ctl = new EmergencyControl({ stateDir: dir + "/state", flag, nodeName: "h", lockTimeoutMs: 30000 });
let changed = 0;
for (let i = 0; i < Number(n); i++) {
  const r = await ctl.toggle(who === "A", who + " " + i, { uid: 0, pid: Deno.pid });
  if (r.changed) changed++;
  // a toggle takes well under a millisecond: without a pause the first process can
  // finish all of them while the other still sleeps in its readiness poll
  await new Promise((r) => setTimeout(r, 2));
}
console.log(changed);
`;

Deno.test("emergency: toggles from two processes serialise (lock), the log holds every transition whole", async () => {
  const base = tempRoot();
  try {
    Deno.writeTextFileSync(`${base}/flag`, "0");
    Deno.writeTextFileSync(`${base}/child.ts`, CHILD);
    const N = 25;
    const spawn = (who: string, other: string) =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "--config",
          `${ROOT}deno.json`,
          `${base}/child.ts`,
          base,
          who,
          String(N),
          other,
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
    const [a, b] = await Promise.all([spawn("A", "B"), spawn("B", "A")]);
    const dec = new TextDecoder();
    strictEqual(a.code, 0, dec.decode(a.stderr));
    strictEqual(b.code, 0, dec.decode(b.stderr));
    const changed = Number(dec.decode(a.stdout)) + Number(dec.decode(b.stdout));
    ok(changed > 0 && changed <= 2 * N, `transitions: ${changed}`);
    const lines = Deno.readTextFileSync(`${base}/state/control_log.jsonl`).split("\n").filter(
      Boolean,
    ).map((l) => JSON.parse(l));
    strictEqual(lines.length, changed, "exactly the transitions, no-ops not logged");
    for (let i = 0; i < lines.length; i++) {
      strictEqual(lines[i].enabled, i % 2 === 0, `line ${i} alternates (no lost update)`);
      strictEqual(lines[i].prev_enabled, i % 2 === 1);
    }
    const byWho = (w: string) => lines.filter((l) => l.reason.startsWith(w + " ")).length;
    ok(byWho("A") > 0 && byWho("B") > 0, "both processes made transitions");
    ok(
      lines.every((l) => l.enabled === l.reason.startsWith("A ")),
      "A only enables, B only disables",
    );
    strictEqual(byWho("A") + byWho("B"), changed);
    const state = JSON.parse(Deno.readTextFileSync(`${base}/state/control_state.json`));
    strictEqual(state.transitions_total, changed);
    strictEqual(state.emergency_disable, Deno.readTextFileSync(`${base}/flag`) === "1");
    strictEqual(
      state.storm_active,
      changed > 10,
      "more than 10 transitions in a minute is a storm",
    );
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});
