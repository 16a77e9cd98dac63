/**
 * The CLI's control-socket client against stand-in daemons: a change whose
 * connection breaks after it was sent is OUTCOME_UNKNOWN (exit 3) and is never
 * followed by a local attempt; only "no daemon listening" falls back.
 */
import { deepStrictEqual, ok, rejects, strictEqual } from "node:assert/strict";
import { main } from "../../src/cli/mod.ts";
import { AegisError } from "../../src/errors.ts";
import { daemonRequest, EXIT_OUTCOME_UNKNOWN, withDaemon } from "../../src/control/client.ts";

/** A unix-socket stand-in for the daemon: reads the request head, then `answer`s. */
function fakeDaemon(answer: (conn: Deno.UnixConn) => Promise<void>) {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-client-" });
  const path = `${dir}/control.sock`;
  const l = Deno.listen({ transport: "unix", path });
  let requests = 0;
  const serving = (async () => {
    for await (const conn of l) {
      requests++;
      const buf = new Uint8Array(1 << 16);
      await conn.read(buf);
      await answer(conn);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  })();
  return {
    dir,
    path,
    get requests() {
      return requests;
    },
    async close() {
      l.close();
      await serving.catch(() => {});
      Deno.removeSync(dir, { recursive: true });
    },
  };
}

Deno.test("client: a change whose connection breaks after sending is OUTCOME_UNKNOWN, a read is a bad reply", async () => {
  const d = fakeDaemon(async () => {}); // reads the request, closes without a word
  try {
    await rejects(daemonRequest("POST", "/policy/apply", { x: 1 }, d.path), (e: unknown) => {
      ok(e instanceof AegisError);
      strictEqual(e.code, "OUTCOME_UNKNOWN");
      ok(e.message.includes("aegisbpf policy show"), e.message);
      ok(e.message.includes("Nothing was tried locally"), e.message);
      return true;
    });
    await rejects(
      daemonRequest("DELETE", "/rules", {}, d.path),
      /OUTCOME_UNKNOWN|aegisbpf block list/,
    );
    await rejects(daemonRequest("GET", "/policy/show", undefined, d.path), (e: unknown) => {
      ok(e instanceof AegisError);
      strictEqual(e.code, "DAEMON_BAD_REPLY");
      return true;
    });
  } finally {
    await d.close();
  }
});

Deno.test("client: a connection reset while it is opened is DAEMON_GONE, not a crash and not a local try", async () => {
  // the race seen in CI: the daemon was SIGKILLed as the CLI connected, and the
  // reset escaped as an uncaught ConnectionReset (exit 1 with a stack)
  const d = fakeDaemon(async () => {});
  try {
    for (const err of [Deno.errors.ConnectionReset, Deno.errors.ConnectionAborted]) {
      const reset = () => Promise.reject(new err("Connection reset by peer (os error 104)"));
      const read = () => Promise.resolve("read");
      await rejects(withDaemon("POST", "/policy/apply", {}, read, d.path, reset), (e: unknown) => {
        ok(e instanceof AegisError, String(e));
        strictEqual(e.code, "DAEMON_GONE");
        ok(e.message.includes("Nothing was sent"), e.message);
        return true;
      });
    }
    strictEqual(d.requests, 0, "no request reached the stand-in");
  } finally {
    await d.close();
  }
});

Deno.test("client: a truncated reply to a change is OUTCOME_UNKNOWN; no socket is null (the only local fallback)", async () => {
  const d = fakeDaemon(async (c) => {
    await c.write(new TextEncoder().encode('HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n{"ok"'));
  });
  try {
    await rejects(daemonRequest("POST", "/emergency/disable", {}, d.path), (e: unknown) => {
      ok(e instanceof AegisError);
      strictEqual(e.code, "OUTCOME_UNKNOWN");
      ok(e.message.includes("incomplete reply"), e.message);
      ok(e.message.includes("aegisbpf emergency-status"), e.message);
      return true;
    });
  } finally {
    await d.close();
  }
  strictEqual(await daemonRequest("POST", "/policy/apply", {}, `${d.dir}/gone.sock`), null);
});

Deno.test("cli: policy apply exits 3 on a broken connection and applies nothing locally", async () => {
  const d = fakeDaemon(async () => {});
  const state = Deno.makeTempDirSync({ prefix: "aegis-client-state-" });
  const saved = ["AEGIS_CONTROL_SOCKET", "AEGIS_STATE_DIR", "AEGIS_PIN_ROOT"].map((
    k,
  ) => [k, Deno.env.get(k)] as const);
  try {
    Deno.env.set("AEGIS_CONTROL_SOCKET", d.path);
    Deno.env.set("AEGIS_STATE_DIR", state);
    Deno.env.set("AEGIS_PIN_ROOT", `${state}/no-pins`);
    Deno.writeTextFileSync(`${state}/p.pol`, "version=1\n[deny_path]\n/etc/hostname\n");
    const code = await main(["policy", "apply", `${state}/p.pol`]);
    strictEqual(code, EXIT_OUTCOME_UNKNOWN);
    strictEqual(d.requests, 1, "sent once, never retried");
    deepStrictEqual(
      [...Deno.readDirSync(state)].map((e) => e.name).sort(),
      ["p.pol"],
      "no state written by a local apply",
    );
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    await d.close();
    Deno.removeSync(state, { recursive: true });
  }
});
