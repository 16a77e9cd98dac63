import { ok, rejects, strictEqual } from "node:assert/strict";
import { sha256Hex } from "../util/bytes.ts";
import { capUtf8, cleanReason, REASON_MAX_BYTES, REASON_REPLACEMENT } from "./reason.ts";

const R = REASON_REPLACEMENT;

Deno.test("reason: plain text is kept, hashed as given", async () => {
  const r = await cleanReason("INC-42: rule blocks deploys");
  strictEqual(r.text, "INC-42: rule blocks deploys");
  strictEqual(r.sha256, await sha256Hex("INC-42: rule blocks deploys"));
  strictEqual(r.replaced, false);
  strictEqual(r.truncated, false);
});

Deno.test("reason: newlines, CR, NUL, ANSI escapes, DEL, C1 and bidi overrides are replaced", async () => {
  const raw = "a\nb\r\nc\0d\x1b[31mred\x1b[0m\x7f\x9b\u202eevil\u2028x";
  const r = await cleanReason(raw);
  strictEqual(r.text, `a${R}b${R}${R}c${R}d${R}[31mred${R}[0m${R}${R}${R}evil${R}x`);
  // deno-lint-ignore no-control-regex
  ok(!/[\u0000-\u001f\u007f-\u009f]/.test(r.text));
  strictEqual(r.sha256, await sha256Hex(raw), "hash of the raw text, not the cleaned");
  strictEqual(r.replaced, true);
});

Deno.test("reason: a 1 MB reason is capped at 512 bytes; the hash covers all of it", async () => {
  const raw = "x".repeat(1 << 20);
  const r = await cleanReason(raw);
  strictEqual(new TextEncoder().encode(r.text).length, REASON_MAX_BYTES);
  strictEqual(r.truncated, true);
  strictEqual(r.sha256, await sha256Hex(raw));
});

Deno.test("reason: the cap never splits a multi-byte character", () => {
  const s = "é".repeat(300); // 2 bytes each
  const c = capUtf8(s, 511);
  strictEqual(new TextEncoder().encode(c).length, 510);
  ok(!c.includes("\uFFFD"));
  const emoji = "a" + "😀".repeat(200); // 1 + 4n bytes
  const e = capUtf8(emoji, 512);
  strictEqual(new TextEncoder().encode(e).length, 509);
  strictEqual(e, "a" + "😀".repeat(127));
});

Deno.test("reason: lone surrogates are replaced", async () => {
  const r = await cleanReason("ok\ud800x\udc00");
  strictEqual(r.text, `ok${R}x${R}`);
});

Deno.test("reason: empty, blank and non-text are refused", async () => {
  await rejects(cleanReason(""), /A reason is required/);
  await rejects(cleanReason(" \t\n"), /A reason is required/);
  await rejects(cleanReason(42), /must be text, got number/);
  await rejects(cleanReason(null), /must be text, got null/);
});
