import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { fingerprint, generateKeyPair, importSecretKey } from "../policy/keys.ts";
import {
  cmdlineRequestsBreakGlass,
  detectBreakGlass,
  mintToken,
  TOKEN_MAX_SECONDS,
} from "./break_glass.ts";
import { privateTempDir } from "./control_testing.ts";

const NOW = 1_700_000_000_000;
const NOW_S = NOW / 1000;

async function keyPair() {
  const kp = await generateKeyPair();
  const secret = await importSecretKey(kp.secretPkcs8);
  const trusted = new Map([[await fingerprint(kp.publicRaw), kp.publicRaw]]);
  return { secret, trusted };
}

Deno.test("break-glass: kernel command line word, exactly", () => {
  ok(cmdlineRequestsBreakGlass("BOOT_IMAGE=/vmlinuz ro aegisbpf.break_glass=1 quiet\n"));
  ok(!cmdlineRequestsBreakGlass("ro aegisbpf.break_glass=0"));
  ok(!cmdlineRequestsBreakGlass("ro xaegisbpf.break_glass=1"));
  ok(!cmdlineRequestsBreakGlass("ro aegisbpf.break_glass=10"));
  ok(!cmdlineRequestsBreakGlass(""));
});

Deno.test("break-glass: cmdline, then marker, then nothing", async () => {
  const { dir, owner } = privateTempDir();
  try {
    const base = {
      markerPaths: [`${dir}/etc_marker`, `${dir}/state_marker`],
      trustedKeys: new Map(),
      now: NOW,
      ownerUid: owner,
    };
    const none = await detectBreakGlass({ ...base, cmdline: "ro quiet" });
    deepStrictEqual({ active: none.active, source: none.source, ignored: none.ignored }, {
      active: false,
      source: null,
      ignored: [],
    });
    const c = await detectBreakGlass({ ...base, cmdline: "ro aegisbpf.break_glass=1" });
    strictEqual(c.active, true);
    strictEqual(c.source, "cmdline");
    Deno.writeTextFileSync(`${dir}/state_marker`, "");
    Deno.chmodSync(`${dir}/state_marker`, 0o600);
    const m = await detectBreakGlass({ ...base, cmdline: "ro" });
    strictEqual(m.active, true);
    strictEqual(m.source, "marker");
    match(m.detail, /state_marker/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("break-glass: unsafe markers are ignored with the reason", async () => {
  const { dir, owner } = privateTempDir();
  try {
    const marker = `${dir}/marker`;
    Deno.writeTextFileSync(marker, "");
    Deno.chmodSync(marker, 0o666);
    const base = { cmdline: "", markerPaths: [marker], trustedKeys: new Map(), now: NOW };
    const w = await detectBreakGlass({ ...base, ownerUid: owner });
    strictEqual(w.active, false);
    match(w.ignored[0], /mode 0666.*not group\/other-writable/);
    Deno.chmodSync(marker, 0o600);
    const o = await detectBreakGlass({ ...base, ownerUid: owner + 1 });
    strictEqual(o.active, false, "owned by the wrong uid");
    match(o.ignored[0], /owned by uid/);
    Deno.removeSync(marker);
    Deno.writeTextFileSync(`${dir}/target`, "");
    Deno.symlinkSync(`${dir}/target`, marker);
    const s = await detectBreakGlass({ ...base, ownerUid: owner });
    strictEqual(s.active, false);
    match(s.ignored[0], /symbolic link/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("break-glass: a signed token is accepted for this node within its window", async () => {
  const { dir, owner } = privateTempDir();
  try {
    const { secret, trusted } = await keyPair();
    const tok = `${dir}/token`;
    Deno.writeTextFileSync(
      tok,
      await mintToken(secret, {
        node: "node-a",
        not_before: NOW_S - 60,
        expires_at: NOW_S + 3600,
        reason: "INC-7 locked out",
      }),
      { mode: 0o600 },
    );
    const opts = {
      cmdline: "",
      markerPaths: [],
      tokenPath: tok,
      trustedKeys: trusted,
      nodeName: "node-a",
      ownerUid: owner,
    };
    const r = await detectBreakGlass({ ...opts, now: NOW });
    strictEqual(r.active, true, r.ignored.join("; "));
    strictEqual(r.source, "token");
    match(r.detail, /INC-7 locked out/);
    // expired, not yet valid, another node, untrusted key
    const later = await detectBreakGlass({ ...opts, now: NOW + 3601_000 });
    strictEqual(later.active, false);
    match(later.ignored[0], /expired at/);
    const early = await detectBreakGlass({ ...opts, now: NOW - 120_000 });
    match(early.ignored[0], /not valid before/);
    const other = await detectBreakGlass({ ...opts, nodeName: "node-b", now: NOW });
    strictEqual(other.active, false);
    match(other.ignored[0], /issued for node "node-a", this node is "node-b"/);
    const untrusted = await detectBreakGlass({ ...opts, trustedKeys: new Map(), now: NOW });
    strictEqual(untrusted.active, false);
    match(untrusted.ignored[0], /not a trusted key/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("break-glass: tampered tokens and tokens over 24 h are refused", async () => {
  const { dir, owner } = privateTempDir();
  try {
    const { secret, trusted } = await keyPair();
    const tok = `${dir}/token`;
    const good = JSON.parse(
      await mintToken(secret, {
        node: "n",
        not_before: NOW_S - 10,
        expires_at: NOW_S + 100,
        reason: "r",
      }),
    );
    const check = async (content: string) => {
      Deno.writeTextFileSync(tok, content, { mode: 0o600 });
      return await detectBreakGlass({
        cmdline: "",
        markerPaths: [],
        tokenPath: tok,
        trustedKeys: trusted,
        nodeName: "n",
        now: NOW,
        ownerUid: owner,
      });
    };
    strictEqual((await check(JSON.stringify(good))).active, true, "the untouched token works");

    // payload changed (a longer window) but signature kept
    const payload = JSON.parse(atob(good.payload));
    payload.expires_at = NOW_S + 999_999;
    const forged = { ...good, payload: btoa(JSON.stringify(payload)) };
    const f = await check(JSON.stringify(forged));
    strictEqual(f.active, false);
    match(f.ignored[0], /signature does not verify/);

    const flipped = good.signature.slice(0, -1) + (good.signature.endsWith("0") ? "1" : "0");
    match((await check(JSON.stringify({ ...good, signature: flipped }))).ignored[0], /signature/);
    match((await check("{oops")).ignored[0], /not JSON/);
    match(
      (await check(JSON.stringify({ ...good, extra: 1 }))).ignored[0],
      /not a aegisbpf-break-glass-v1 token/,
    );
    match((await check(JSON.stringify({ ...good, format: "v0" }))).ignored[0], /format/);

    // a token validly signed but longer than 24 h: mintToken refuses, and so does the verifier
    let refused = false;
    try {
      await mintToken(secret, {
        node: "n",
        not_before: NOW_S,
        expires_at: NOW_S + TOKEN_MAX_SECONDS + 1,
        reason: "r",
      });
    } catch (e) {
      refused = /at most 24 hours/.test((e as Error).message);
    }
    ok(refused, "mintToken refuses > 24 h");
    const longPayload = new TextEncoder().encode(JSON.stringify({
      node: "n",
      not_before: NOW_S - 10,
      expires_at: NOW_S - 10 + TOKEN_MAX_SECONDS + 1,
      reason: "r",
    }));
    const msg = new Uint8Array([
      ...new TextEncoder().encode("AEGIS-BREAK-GLASS-V1\n"),
      ...longPayload,
    ]);
    const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", secret, msg));
    const long = {
      ...good,
      payload: btoa(String.fromCharCode(...longPayload)),
      signature: Array.from(sig, (b) => b.toString(16).padStart(2, "0")).join(""),
    };
    match((await check(JSON.stringify(long))).ignored[0], /the limit is 86400 s/);

    // a token file others can write is not even read
    Deno.writeTextFileSync(tok, JSON.stringify(good));
    Deno.chmodSync(tok, 0o646);
    const unsafe = await detectBreakGlass({
      cmdline: "",
      markerPaths: [],
      tokenPath: tok,
      trustedKeys: trusted,
      nodeName: "n",
      now: NOW,
      ownerUid: owner,
    });
    strictEqual(unsafe.active, false);
    match(unsafe.ignored[0], /mode 0646/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
