import assert from "node:assert/strict";
import {
  MAX_BUNDLE_BYTES,
  MAX_CLOCK_SKEW_SECONDS,
  MAX_POLICY_VERSION,
  MAX_UNIX_TIME,
  MAX_VALIDITY_SECONDS,
  parseBundle,
  signBundle,
  SIGNING_CONTEXT,
  verifyBundle,
  verifyBundleWithState,
  type VerifyOptions,
} from "./bundle.ts";
import { addKey, fingerprint, generateKeyPair, importPublicKey } from "./keys.ts";
import { writeCounter } from "./atomic.ts";
import { toHex } from "../util/bytes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const BODY = enc.encode("version=1\n[deny_path]\n/usr/bin/nc\n");
const T0 = 1_767_225_600;

async function setup() {
  const kp = await generateKeyPair();
  const fp = await fingerprint(kp.publicRaw);
  const bundle = await signBundle(BODY, {
    secretKey: kp.secretPkcs8.slice(),
    policyVersion: 5,
    timestamp: T0,
    expires: T0 + 3600,
  });
  const opts: VerifyOptions = {
    trustedKeys: new Map([[fp, kp.publicRaw]]),
    now: T0 + 10,
    minVersionExclusive: 4,
  };
  return { kp, fp, bundle, opts };
}

/** Replace a header line starting with `field: ` by `field: value`. */
function setField(bundle: Uint8Array, field: string, value: string): Uint8Array {
  const text = dec.decode(bundle);
  const re = new RegExp(`^${field}: .*$`, "m");
  assert.ok(re.test(text), field);
  return enc.encode(text.replace(re, `${field}: ${value}`));
}

Deno.test("bundle: sign then verify round trip keeps the body byte for byte", async () => {
  const { bundle, opts, fp } = await setup();
  const text = dec.decode(bundle);
  assert.ok(text.startsWith("AEGIS-POLICY-BUNDLE-V2\nformat_version: 2\npolicy_version: 5\n"));
  const r = await verifyBundle(bundle, opts);
  assert.equal(r.ok, true, JSON.stringify(r));
  if (!r.ok) return;
  assert.deepEqual(r.body, BODY);
  assert.equal(r.policyVersion, 5);
  assert.equal(r.signer, fp);
  const p = parseBundle(bundle);
  assert.equal(p.timestamp, T0);
  assert.equal(p.expires, T0 + 3600);
  assert.equal(p.formatVersion, 2);
  assert.deepEqual(
    text.split("\n").slice(0, 9).map((l) => l.split(":")[0]),
    [
      "AEGIS-POLICY-BUNDLE-V2",
      "format_version",
      "policy_version",
      "timestamp",
      "expires",
      "signer_key",
      "policy_sha256",
      "signature",
      "---",
    ],
  );
});

Deno.test("bundle: the signature covers the context string + the header bytes before the signature line (as docs/signing.md says)", async () => {
  const { bundle, kp } = await setup();
  // An independent re-implementation of the documented construction.
  const text = dec.decode(bundle);
  const cut = text.indexOf("\nsignature: ") + 1;
  const msg = enc.encode("aegisbpf policy bundle v2\0" + text.slice(0, cut));
  assert.equal(SIGNING_CONTEXT.length, 26);
  const sigHex = /^signature: ([0-9a-f]{128})$/m.exec(text)![1]!;
  const sig = Uint8Array.from(sigHex.match(/../g)!, (h) => parseInt(h, 16));
  const key = await importPublicKey(kp.publicRaw);
  assert.equal(await crypto.subtle.verify({ name: "Ed25519" }, key, sig, msg), true);
  // without the context string, the same bytes do not verify: the context is signed
  const bare = enc.encode(text.slice(0, cut));
  assert.equal(await crypto.subtle.verify({ name: "Ed25519" }, key, sig, bare), false);
});

Deno.test("bundle: trusted key as CryptoKey or hex also verifies; binary body survives", async () => {
  const { kp, fp, opts } = await setup();
  const body = new Uint8Array([0, 255, 13, 10, 0x2d, 0x2d, 0x2d, 10, 1]);
  const b = await signBundle(body, {
    secretKey: kp.secretPkcs8.slice(),
    policyVersion: 9,
    timestamp: T0,
    expires: T0 + 60,
  });
  for (const k of [await importPublicKey(kp.publicRaw), toHex(kp.publicRaw)]) {
    const r = await verifyBundle(b, { ...opts, trustedKeys: new Map([[fp, k]]) });
    assert.equal(r.ok, true, JSON.stringify(r));
    if (r.ok) assert.deepEqual(r.body, body);
  }
});

Deno.test("bundle: expired", async () => {
  const { bundle, opts } = await setup();
  const r = await verifyBundle(bundle, { ...opts, now: T0 + 3600 });
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.code, "BUNDLE_EXPIRED");
    assert.match(r.message, /expired at 1767229200/);
  }
});

Deno.test("bundle: body changed after signing is a hash mismatch", async () => {
  const { bundle, opts } = await setup();
  const changed = new Uint8Array([...bundle, ...enc.encode("/bin/sh\n")]);
  const r = await verifyBundle(changed, opts);
  assert.equal(r.ok ? "ok" : r.code, "BUNDLE_HASH_MISMATCH");
});

Deno.test("bundle: signer not trusted", async () => {
  const { bundle, opts } = await setup();
  const other = await generateKeyPair();
  const r = await verifyBundle(bundle, {
    ...opts,
    trustedKeys: new Map([[await fingerprint(other.publicRaw), other.publicRaw]]),
  });
  assert.equal(r.ok ? "ok" : r.code, "BUNDLE_UNTRUSTED_KEY");
  // A map entry whose key does not match its fingerprint is not trusted either.
  const { fp } = await setup();
  const r2 = await verifyBundle(bundle, { ...opts, trustedKeys: new Map([[fp, other.publicRaw]]) });
  assert.equal(r2.ok ? "ok" : "fail", "fail");
});

Deno.test("bundle: signer_key swapped to another trusted key fails the signature", async () => {
  const { bundle, opts } = await setup();
  const other = await generateKeyPair();
  const ofp = await fingerprint(other.publicRaw);
  const swapped = setField(bundle, "signer_key", toHex(other.publicRaw));
  const r = await verifyBundle(swapped, {
    ...opts,
    trustedKeys: new Map([...opts.trustedKeys, [ofp, other.publicRaw]]),
  });
  assert.equal(r.ok ? "ok" : r.code, "BUNDLE_BAD_SIGNATURE");
});

Deno.test("bundle: signature with one bit flipped", async () => {
  const { bundle, opts } = await setup();
  const sig = parseBundle(bundle).signature;
  const flipped = (parseInt(sig[0]!, 16) ^ 1).toString(16) + sig.slice(1);
  const r = await verifyBundle(setField(bundle, "signature", flipped), opts);
  assert.equal(r.ok ? "ok" : r.code, "BUNDLE_BAD_SIGNATURE");
});

Deno.test("bundle: raising expires or policy_version breaks the signature", async () => {
  const { bundle, opts } = await setup();
  for (const [f, v] of [["expires", String(T0 + 99999)], ["policy_version", "6"]]) {
    const r = await verifyBundle(setField(bundle, f!, v!), opts);
    assert.equal(r.ok ? "ok" : r.code, "BUNDLE_BAD_SIGNATURE", f);
  }
});

Deno.test("bundle: policy_version not above the counter is a rollback", async () => {
  const { bundle, opts } = await setup();
  for (const min of [5, 6, 100]) {
    const r = await verifyBundle(bundle, { ...opts, minVersionExclusive: min });
    assert.equal(r.ok ? "ok" : r.code, "BUNDLE_ROLLBACK", String(min));
  }
  assert.equal((await verifyBundle(bundle, { ...opts, minVersionExclusive: 0 })).ok, true);
});

Deno.test("bundle: checks run in the documented order (time, then hash, then key)", async () => {
  const { bundle, opts } = await setup();
  const changed = new Uint8Array([...bundle, 0x41]);
  const r1 = await verifyBundle(changed, { ...opts, now: T0 + 7200 });
  assert.equal(r1.ok ? "ok" : r1.code, "BUNDLE_EXPIRED");
  const r0 = await verifyBundle(changed, { ...opts, now: T0 - MAX_CLOCK_SKEW_SECONDS - 1 });
  assert.equal(r0.ok ? "ok" : r0.code, "BUNDLE_NOT_YET_VALID");
  const r2 = await verifyBundle(changed, { ...opts, trustedKeys: new Map() });
  assert.equal(r2.ok ? "ok" : r2.code, "BUNDLE_HASH_MISMATCH");
  const r3 = await verifyBundle(bundle, {
    ...opts,
    trustedKeys: new Map(),
    minVersionExclusive: 99,
  });
  assert.equal(r3.ok ? "ok" : r3.code, "BUNDLE_UNTRUSTED_KEY");
});

Deno.test("bundle: timestamp up to 300 s in the future is clock skew; beyond is not yet valid", async () => {
  const { bundle, opts } = await setup();
  const at = async (now: number) => {
    const r = await verifyBundle(bundle, { ...opts, now });
    return r.ok ? "ok" : r.code;
  };
  assert.equal(await at(T0 - MAX_CLOCK_SKEW_SECONDS), "ok");
  assert.equal(await at(T0 - MAX_CLOCK_SKEW_SECONDS - 1), "BUNDLE_NOT_YET_VALID");
  assert.equal(await at(T0 + 3599), "ok");
  assert.equal(await at(T0 + 3600), "BUNDLE_EXPIRED");
  const r = await verifyBundle(bundle, { ...opts, now: T0 - 1000 });
  assert.match(r.ok ? "" : r.message, /1000 s in the future .*at most 300 s of clock skew/);
});

async function formatFail(bytes: Uint8Array, opts: VerifyOptions, code = "BUNDLE_FORMAT") {
  const r = await verifyBundle(bytes, opts);
  assert.equal(r.ok, false);
  if (r.ok) throw new Error("unreachable");
  assert.equal(r.code, code, r.message);
  return r;
}

Deno.test("bundle: malformed headers name the line and field", async () => {
  const { bundle, opts } = await setup();
  const text = dec.decode(bundle);
  const lines = text.split("\n");

  let r = await formatFail(enc.encode(text.replace("AEGIS-POLICY-BUNDLE-V2", "AEGIS-X")), opts);
  assert.equal(r.line, 1);
  assert.match(r.message, /Line 1 .*AEGIS-POLICY-BUNDLE-V2/);

  r = await formatFail(setField(bundle, "policy_version", "05"), opts);
  assert.equal(r.line, 3);
  assert.equal(r.field, "policy_version");
  assert.match(r.message, /Line 3: field "policy_version" is "05"/);

  r = await formatFail(setField(bundle, "timestamp", "-1"), opts);
  assert.equal(r.field, "timestamp");

  r = await formatFail(setField(bundle, "signature", "ab"), opts);
  assert.equal(r.line, 8);
  assert.match(r.message, /"signature" must be 128 lower-case hex/);

  r = await formatFail(setField(bundle, "signer_key", "A".repeat(64)), opts);
  assert.match(r.message, /upper case/);

  for (const v of ["1", "3"]) {
    r = await formatFail(setField(bundle, "format_version", v), opts);
    assert.equal(r.field, "format_version");
    assert.match(r.message, /does not match the first line/);
  }

  // Unknown field, before "---" and between fields.
  r = await formatFail(enc.encode(text.replace("---\n", "comment: hi\n---\n")), opts);
  assert.equal(r.field, "comment");
  assert.equal(r.line, 9);
  assert.match(r.message, /unknown header field "comment"/);

  // Duplicate field.
  r = await formatFail(enc.encode(text.replace("---\n", `${lines[2]}\n---\n`)), opts);
  assert.match(r.message, /appears again \(first on line 3\)/);

  // Out of order (two fields swapped) and missing in the middle.
  r = await formatFail(
    enc.encode(text.replace(`${lines[3]}\n${lines[4]}\n`, `${lines[4]}\n${lines[3]}\n`)),
    opts,
  );
  assert.equal(r.line, 4);
  assert.match(r.message, /field "expires" is out of place; expected "timestamp"/);
  r = await formatFail(enc.encode(text.replace(/^expires: .*\n/m, "")), opts);
  assert.match(r.message, /out of place; expected "expires"/);

  // Missing at the end.
  r = await formatFail(enc.encode(text.replace(/^signature: .*\n/m, "")), opts);
  assert.equal(r.field, "signature");
  assert.match(r.message, /lacks field "signature"/);

  // Not "field: value".
  r = await formatFail(enc.encode(text.replace("timestamp: ", "timestamp:")), opts);
  assert.equal(r.line, 4);

  // CRLF header.
  r = await formatFail(
    enc.encode(text.replace("format_version: 2\n", "format_version: 2\r\n")),
    opts,
  );
  assert.match(r.message, /CR/);
  assert.equal(r.line, 2);
});

Deno.test("bundle: prototype names as header fields are unknown fields (Map lookup)", async () => {
  const { bundle, opts } = await setup();
  const text = dec.decode(bundle);
  for (
    const line of [
      "constructor: a{undefined}",
      "__proto__: x",
      "toString: 1",
      "hasOwnProperty: 1",
      "valueOf: 1",
      "__defineGetter__: 1",
    ]
  ) {
    const name = line.split(":")[0]!;
    // after the last field, and in the middle of the header
    for (const at of ["---\n", "timestamp: "]) {
      const r = await formatFail(enc.encode(text.replace(at, `${line}\n${at}`)), opts);
      assert.equal(r.field, name, line);
      assert.match(r.message, new RegExp(`unknown header field "${name}"`), line);
    }
  }
});

Deno.test("bundle: numbers are bounded; validity period is at most 366 days", async () => {
  const { bundle, opts } = await setup();
  const cases: [string, string, RegExp][] = [
    ["policy_version", "0", /outside 1\.\./],
    ["policy_version", String(MAX_POLICY_VERSION + 1), /outside 1\.\.9007199254740991/],
    ["policy_version", "1" + "0".repeat(400), /outside/],
    ["timestamp", String(MAX_UNIX_TIME + 1), /outside 0\.\.253402300799/],
    ["expires", String(MAX_UNIX_TIME + 1), /outside 1\.\.253402300799/],
    ["expires", String(T0), /expires \(1767225600\) must be later than timestamp/],
    ["expires", String(T0 + MAX_VALIDITY_SECONDS + 1), /the limit is 31622400 s \(366 days\)/],
    ["timestamp", "1", /validity period .* the limit is 31622400 s/],
  ];
  for (const [field, value, re] of cases) {
    const r = await formatFail(setField(bundle, field, value), opts);
    assert.match(r.message, re, `${field}: ${value.slice(0, 20)}`);
  }
  // at the limits the format is fine (the signature then fails: the header was edited)
  for (const [f, v] of [["expires", String(T0 + MAX_VALIDITY_SECONDS)], ["policy_version", "1"]]) {
    const r = await verifyBundle(setField(bundle, f!, v!), opts);
    assert.equal(r.ok ? "ok" : r.code, "BUNDLE_BAD_SIGNATURE", f);
  }
});

Deno.test("bundle: format v1 and unknown versions are refused with how to re-sign", async () => {
  const { opts } = await setup();
  const v1 = enc.encode(
    "AEGIS-POLICY-BUNDLE-V1\nformat_version: 1\npolicy_version: 7\ntimestamp: 1796005911\n" +
      `expires: 1798597911\nsigner_key: ${"a".repeat(64)}\nsignature: ${"b".repeat(128)}\n` +
      `policy_sha256: ${"c".repeat(64)}\n---\nversion=1\n`,
  );
  let r = await formatFail(v1, opts, "BUNDLE_UNSUPPORTED_VERSION");
  assert.equal(r.line, 1);
  assert.match(r.message, /format v1 is no longer accepted/);
  assert.match(r.message, /aegisbpf policy sign <policy file> --key <secret key> --output/);
  r = await formatFail(
    enc.encode("AEGIS-POLICY-BUNDLE-V3\n---\n"),
    opts,
    "BUNDLE_UNSUPPORTED_VERSION",
  );
  assert.match(r.message, /format v3 is not supported/);
  // a v1 first line with nothing after it still says v1
  r = await formatFail(enc.encode("AEGIS-POLICY-BUNDLE-V1"), opts, "BUNDLE_UNSUPPORTED_VERSION");
  assert.throws(() => parseBundle(v1), { code: "BUNDLE_UNSUPPORTED_VERSION" });
});

Deno.test("bundle: missing --- line, empty input, garbage, too large", async () => {
  const { bundle, opts } = await setup();
  const text = dec.decode(bundle);
  let r = await formatFail(enc.encode(text.replace("---\n", "")), opts);
  assert.match(r.message, /"---"/);
  r = await formatFail(enc.encode(text.slice(0, text.indexOf("---"))), opts);
  assert.match(r.message, /No "---" line/);
  r = await formatFail(new Uint8Array(), opts);
  assert.match(r.message, /empty/);
  r = await formatFail(new Uint8Array(100_000).fill(0x41), opts);
  assert.match(r.message, /Line 1 is "AAAA.*not an aegisbpf policy bundle/);
  // a header that never ends: searched 16 KiB, no further
  r = await formatFail(enc.encode(text.replace("---\n", "x".repeat(20_000))), opts);
  assert.match(r.message, /No "---" line ends the header \(searched 16384 bytes/);
  assert.throws(() => parseBundle(enc.encode("hello\n")), { code: "BUNDLE_FORMAT" });
  const huge = new Uint8Array(MAX_BUNDLE_BYTES + 1);
  huge.set(bundle);
  r = await formatFail(huge, opts);
  assert.match(r.message, /the limit is 16793600 bytes/);
});

Deno.test("signBundle refuses bad numbers, expires <= timestamp, too long validity", async () => {
  const { kp } = await setup();
  const base = { secretKey: kp.secretPkcs8, policyVersion: 1, timestamp: T0, expires: T0 + 1 };
  const bad: Partial<typeof base>[] = [
    { expires: T0 },
    { expires: T0 + MAX_VALIDITY_SECONDS + 1 },
    { policyVersion: -1 },
    { policyVersion: 0 },
    { policyVersion: MAX_POLICY_VERSION + 1 },
    { timestamp: 1.5 },
    { timestamp: MAX_UNIX_TIME, expires: MAX_UNIX_TIME + 1 },
    { secretKey: new Uint8Array(48) },
  ];
  for (const b of bad) {
    await assert.rejects(signBundle(BODY, { ...base, ...b }), { code: "USAGE" }, JSON.stringify(b));
  }
  // the limits themselves sign and verify
  const b = await signBundle(BODY, {
    ...base,
    policyVersion: MAX_POLICY_VERSION,
    expires: T0 + MAX_VALIDITY_SECONDS,
  });
  const fp = await fingerprint(kp.publicRaw);
  const r = await verifyBundle(b, {
    trustedKeys: new Map([[fp, kp.publicRaw]]),
    now: T0,
    minVersionExclusive: MAX_POLICY_VERSION - 1,
  });
  assert.equal(r.ok, true, JSON.stringify(r));
});

Deno.test("verifyBundleWithState: trusted folder + counter file; counter not advanced", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-bundle-" });
  try {
    const uid = Deno.statSync(dir).uid!;
    Deno.chmodSync(dir, 0o755);
    const { kp, bundle } = await setup();
    Deno.writeTextFileSync(`${dir}/pub`, toHex(kp.publicRaw) + "\n");
    const keysDir = `${dir}/keys`;
    await addKey(`${dir}/pub`, keysDir);
    const counterPath = `${dir}/counter.json`;
    const o = { keysDir, counterPath, now: T0 + 1, ownerUid: uid };
    let { result, warnings } = await verifyBundleWithState(bundle, o);
    assert.equal(result.ok, true, JSON.stringify(result));
    assert.deepEqual(warnings, []);
    assert.throws(() => Deno.statSync(counterPath), Deno.errors.NotFound);
    writeCounter(counterPath, 5);
    ({ result } = await verifyBundleWithState(bundle, o));
    assert.equal(result.ok ? "ok" : result.code, "BUNDLE_ROLLBACK");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("bundle: every single-byte change of a bundle fails verification (exhaustive)", async () => {
  const { bundle, opts } = await setup();
  assert.equal((await verifyBundle(bundle, opts)).ok, true);
  const codes = new Map<string, number>();
  let tried = 0;
  const t = bundle.slice();
  for (let i = 0; i < bundle.length; i++) {
    for (let v = 0; v < 256; v++) {
      if (v === bundle[i]) continue;
      t[i] = v;
      const r = await verifyBundle(t, opts);
      if (r.ok) assert.fail(`byte ${i} changed from ${bundle[i]} to ${v} still verifies`);
      codes.set(r.code, (codes.get(r.code) ?? 0) + 1);
      tried++;
    }
    t[i] = bundle[i]!;
  }
  assert.equal(tried, bundle.length * 255);
  // each layer catches its share: the header grammar, the body hash, the signature
  for (const c of ["BUNDLE_FORMAT", "BUNDLE_HASH_MISMATCH", "BUNDLE_BAD_SIGNATURE"]) {
    assert.ok((codes.get(c) ?? 0) > 0, `${c}: ${JSON.stringify([...codes])}`);
  }
});
