import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { Hono } from "hono";
import {
  createControlApp,
  ErrorBodySchema,
  jsonDepthExceeds,
  JsonDepthScanner,
  MAX_BODY_BYTES,
  MAX_JSON_DEPTH,
} from "./app.ts";
import { EmergencyControl } from "./emergency.ts";
import { FakeFlag, privateTempDir } from "./control_testing.ts";

function setup() {
  const { dir, owner } = privateTempDir();
  const flag = new FakeFlag();
  const emergency = new EmergencyControl({ stateDir: dir, flag, nodeName: "n", ownerUid: owner });
  const readOnly = new Hono();
  readOnly.get("/health", (c) => c.json({ ok: true }));
  const rules = new Hono();
  rules.post("/add", (c) => c.json({ added: true }));
  const app = createControlApp({ emergency, readOnly, mounts: { "/rules": rules } });
  const logLines = () => {
    try {
      return Deno.readTextFileSync(`${dir}/control_log.jsonl`).split("\n").filter(Boolean);
    } catch {
      return [];
    }
  };
  return { app, flag, dir, logLines, cleanup: () => Deno.removeSync(dir, { recursive: true }) };
}

const post = (body: BodyInit | null, headers: Record<string, string> = {}) => ({
  method: "POST",
  body,
  headers: { "content-type": "application/json", ...headers },
});

async function errorOf(res: Response, status: number, code: string): Promise<string> {
  strictEqual(res.status, status);
  const body = ErrorBodySchema.parse(await res.json());
  strictEqual(body.code, code);
  return body.error;
}

Deno.test("control app: disable, status, enable", async () => {
  const t = setup();
  try {
    const d = await t.app.request("/emergency/disable", post(JSON.stringify({ reason: "INC-9" })));
    strictEqual(d.status, 200);
    const db = await d.json();
    strictEqual(db.changed, true);
    strictEqual(db.active, true);
    strictEqual(t.flag.value, true);
    const s = await t.app.request("/emergency/status");
    strictEqual(s.status, 200);
    const sb = await s.json();
    strictEqual(sb.active, true);
    strictEqual(sb.reason, "INC-9");
    // no kernel credentials (app.request): recorded as unknown, never invented
    deepStrictEqual(sb.changed_by, { uid: -1, pid: -1, source: "unknown" });
    const again = await t.app.request("/emergency/disable", post(JSON.stringify({ reason: "x" })));
    strictEqual((await again.json()).changed, false);
    const e = await t.app.request("/emergency/enable", post(JSON.stringify({ reason: "fixed" })));
    strictEqual(e.status, 200);
    strictEqual(t.flag.value, false);
    strictEqual(t.logLines().length, 2);
  } finally {
    t.cleanup();
  }
});

Deno.test("control app: malformed bodies are 400 with a code and change nothing", async () => {
  const t = setup();
  try {
    const cases: [BodyInit | null, string, RegExp][] = [
      ["{not json", "INVALID_JSON", /not JSON/],
      ["", "BAD_REQUEST", /JSON body is required/],
      [null, "BAD_REQUEST", /JSON body is required/],
      [JSON.stringify({}), "BAD_REQUEST", /reason/],
      [JSON.stringify({ reason: 5 }), "BAD_REQUEST", /reason/],
      [JSON.stringify({ reason: "" }), "BAD_REQUEST", /reason must not be empty/],
      [JSON.stringify({ reason: "x", force: true }), "BAD_REQUEST", /force/],
      [JSON.stringify(["reason"]), "BAD_REQUEST", /invalid request body/],
      [JSON.stringify("reason"), "BAD_REQUEST", /invalid request body/],
      [new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]), "BAD_REQUEST", /not valid UTF-8/],
      [JSON.stringify({ reason: "   " }), "USAGE", /A reason is required/],
    ];
    for (const [body, code, msg] of cases) {
      const res = await t.app.request("/emergency/disable", post(body));
      match(await errorOf(res, 400, code), msg, `body ${String(body)}`);
    }
    strictEqual(t.flag.value, false);
    deepStrictEqual(t.flag.sets, []);
    strictEqual(t.logLines().length, 0);
  } finally {
    t.cleanup();
  }
});

Deno.test("control app: bodies over 64 KiB are 413, by header and by actual size", async () => {
  const t = setup();
  try {
    const big = JSON.stringify({ reason: "x".repeat(MAX_BODY_BYTES) });
    const r1 = await t.app.request("/emergency/disable", post(big));
    await errorOf(r1, 413, "BODY_TOO_LARGE");
    // a stream without content-length
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 100; i++) c.enqueue(new Uint8Array(1024).fill(0x20));
        c.close();
      },
    });
    const r2 = await t.app.request("/emergency/disable", {
      method: "POST",
      body: stream,
      // @ts-ignore: Request init for a streamed body
      duplex: "half",
    });
    await errorOf(r2, 413, "BODY_TOO_LARGE");
    // a lying content-length that claims too much is refused without reading
    const r3 = await t.app.request(
      "/emergency/disable",
      post(JSON.stringify({ reason: "x" }), { "content-length": String(10 << 20) }),
    );
    strictEqual(r3.status, 413);
    strictEqual(t.flag.value, false);
    // just under the limit works and the reason is capped
    const ok64 = JSON.stringify({ reason: "y".repeat(MAX_BODY_BYTES - 20) });
    const r4 = await t.app.request("/emergency/disable", post(ok64));
    strictEqual(r4.status, 200);
    strictEqual(new TextEncoder().encode((await r4.json()).reason).length, 512);
  } finally {
    t.cleanup();
  }
});

Deno.test("control app: unknown paths 404, wrong methods 405, all JSON", async () => {
  const t = setup();
  try {
    await errorOf(await t.app.request("/nope"), 404, "NOT_FOUND");
    await errorOf(await t.app.request("/emergency"), 404, "NOT_FOUND");
    await errorOf(await t.app.request("/emergency/disable/x", post("{}")), 404, "NOT_FOUND");
    for (const m of ["GET", "PUT", "DELETE", "PATCH"]) {
      const r = await t.app.request("/emergency/disable", { method: m });
      await errorOf(r, 405, "METHOD_NOT_ALLOWED");
      strictEqual(r.headers.get("allow"), "POST");
    }
    const r = await t.app.request("/emergency/status", post("{}"));
    await errorOf(r, 405, "METHOD_NOT_ALLOWED");
    strictEqual(r.headers.get("allow"), "GET");
    strictEqual(t.flag.value, false);
  } finally {
    t.cleanup();
  }
});

Deno.test("control app: the read-only app and mounted sub-apps answer too", async () => {
  const t = setup();
  try {
    const h = await t.app.request("/health");
    strictEqual(h.status, 200);
    deepStrictEqual(await h.json(), { ok: true });
    const r = await t.app.request("/rules/add", post("{}"));
    deepStrictEqual(await r.json(), { added: true });
    await errorOf(await t.app.request("/rules/nope"), 404, "NOT_FOUND");
  } finally {
    t.cleanup();
  }
});

Deno.test("control app: a failing toggle is 500 with the operator's message, an unexpected error leaks nothing", async () => {
  const t = setup();
  try {
    Deno.mkdirSync(`${t.dir}/control_log.jsonl`);
    const r = await t.app.request("/emergency/disable", post(JSON.stringify({ reason: "x" })));
    match(await errorOf(r, 500, "UNSAFE_PATH"), /control log .* not a regular file/);
    strictEqual(t.flag.value, false);

    const boom = new Hono();
    boom.get("/x", () => {
      throw new Error("secret internals at /very/private/path");
    });
    const { dir, owner } = privateTempDir();
    try {
      const app = createControlApp({
        emergency: new EmergencyControl({
          stateDir: dir,
          flag: new FakeFlag(),
          nodeName: "n",
          ownerUid: owner,
        }),
        mounts: { "/boom": boom },
      });
      const res = await app.request("/boom/x");
      strictEqual(res.status, 500);
      const text = await res.text();
      deepStrictEqual(JSON.parse(text), { error: "internal error", code: "INTERNAL" });
      ok(!text.includes("private"));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  } finally {
    t.cleanup();
  }
});

Deno.test("control app: a held lock is 409", async () => {
  const { dir, owner } = privateTempDir();
  try {
    const flag = new FakeFlag();
    const emergency = new EmergencyControl({
      stateDir: dir,
      flag,
      nodeName: "n",
      ownerUid: owner,
      lockTimeoutMs: 100,
    });
    const app = createControlApp({ emergency });
    const f = Deno.openSync(`${dir}/control.lock`, {
      read: true,
      write: true,
      create: true,
      mode: 0o600,
    });
    await f.lock(true);
    try {
      const r = await app.request("/emergency/disable", post(JSON.stringify({ reason: "x" })));
      match(await errorOf(r, 409, "EMERGENCY_LOCKED"), /another operator holds the emergency lock/);
    } finally {
      f.close();
    }
    await new Promise((r) => setTimeout(r, 20)); // the abandoned wait is granted and let go
    strictEqual(flag.value, false);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("control app: the caller is the kernel peer from env, never a header", async () => {
  const t = setup();
  try {
    const env = { peer: { uid: 0, pid: 4242, gid: 0 }, remote: "unix" };
    const d = await t.app.request(
      "/emergency/disable",
      post(JSON.stringify({ reason: "INC-1" }), {
        "x-aegis-caller-uid": "1234",
        "x-aegis-caller-pid": "1",
      }),
      env,
    );
    strictEqual(d.status, 200);
    const s = await (await t.app.request("/emergency/status", {}, env)).json();
    deepStrictEqual(s.changed_by, { uid: 0, pid: 4242, source: "kernel" });
    const line = JSON.parse(t.logLines()[0]);
    strictEqual(line.uid, 0);
    strictEqual(line.pid, 4242);
    strictEqual(line.caller_source, "kernel");
    // a malformed peer (not the listener's) counts as no credentials
    const e = await t.app.request(
      "/emergency/enable",
      post(JSON.stringify({ reason: "ok" })),
      { peer: { uid: "0", pid: -3, gid: 0 } },
    );
    strictEqual(e.status, 200);
    const line2 = JSON.parse(t.logLines()[1]);
    deepStrictEqual([line2.uid, line2.pid, line2.caller_source], [-1, -1, "unknown"]);
  } finally {
    t.cleanup();
  }
});

Deno.test("jsonDepthExceeds counts [ and { outside strings only", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  strictEqual(jsonDepthExceeds(enc("[[[]]]"), 3), false);
  strictEqual(jsonDepthExceeds(enc("[[[[]]]]"), 3), true);
  strictEqual(jsonDepthExceeds(enc('{"a":{"b":[1]}}'), 3), false);
  strictEqual(jsonDepthExceeds(enc('{"a":{"b":[{}]}}'), 3), true);
  // brackets in strings, escaped quotes and backslashes do not count
  strictEqual(jsonDepthExceeds(enc(String.raw`["[[[[{{{{", "\"[[[["]`), 1), false);
  // an escaped backslash does not escape the closing quote
  strictEqual(jsonDepthExceeds(enc(String.raw`["\\", [[]]]`), 2), true);
  strictEqual(jsonDepthExceeds(enc(String.raw`["\\", [[]]]`), 3), false);
  // sibling arrays do not add up
  strictEqual(jsonDepthExceeds(enc("[[],[],[],[],[]]"), 2), false);
  // fed in chunks: an escape and a string straddle the boundary
  const sc = new JsonDepthScanner(1);
  strictEqual(sc.feed(enc('["ab\\')), false); // ends inside an escape
  strictEqual(sc.feed(enc('"[[[", "x')), false);
  strictEqual(sc.feed(enc('"]')), false);
  const sc2 = new JsonDepthScanner(2);
  strictEqual(sc2.feed(enc("[[")), false);
  strictEqual(sc2.feed(enc("[")), true);
});

Deno.test("control app: a body nested deeper than MAX_JSON_DEPTH is 400 before parsing", async () => {
  const t = setup();
  try {
    const nest = (n: number) => "[".repeat(n) + "]".repeat(n);
    const deep = await t.app.request("/emergency/disable", post(nest(MAX_BODY_BYTES / 2)));
    match(await errorOf(deep, 400, "JSON_TOO_DEEP"), new RegExp(`limit is ${MAX_JSON_DEPTH}`));
    const over = await t.app.request("/emergency/disable", post(nest(MAX_JSON_DEPTH + 1)));
    await errorOf(over, 400, "JSON_TOO_DEEP");
    // exactly at the limit it parses (and then fails validation, not depth)
    const at = await t.app.request("/emergency/disable", post(nest(MAX_JSON_DEPTH)));
    await errorOf(at, 400, "BAD_REQUEST");
    // deep brackets inside the reason string are just text
    const inString = JSON.stringify({ reason: "[{".repeat(1000) });
    strictEqual((await t.app.request("/emergency/disable", post(inString))).status, 200);
  } finally {
    t.cleanup();
  }
});

Deno.test("control app: __proto__ and constructor keys are refused and pollute nothing", async () => {
  const t = setup();
  try {
    const bodies = [
      '{"reason":"x","__proto__":{"polluted":true}}',
      '{"__proto__":{"reason":"x"}}',
      '{"reason":"x","constructor":{"prototype":{"polluted":true}}}',
      '{"constructor":"x","reason":"x"}',
    ];
    for (const b of bodies) {
      const r = await t.app.request("/emergency/disable", post(b));
      await errorOf(r, 400, "BAD_REQUEST");
    }
    strictEqual(({} as Record<string, unknown>).polluted, undefined);
    strictEqual((Object.prototype as Record<string, unknown>).reason, undefined);
    strictEqual(t.flag.value, false);
    strictEqual(t.logLines().length, 0);
  } finally {
    t.cleanup();
  }
});
