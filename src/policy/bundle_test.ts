import assert from "node:assert/strict";
import {
  parseBundle,
  signBundle,
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
  assert.ok(text.startsWith("AEGIS-POLICY-BUNDLE-V1\nformat_version: 1\npolicy_version: 5\n"));
  const r = await verifyBundle(bundle, opts);
  assert.equal(r.ok, true, JSON.stringify(r));
  if (!r.ok) return;
  assert.deepEqual(r.body, BODY);
  assert.equal(r.policyVersion, 5);
  assert.equal(r.signer, fp);
  const p = parseBundle(bundle);
  assert.equal(p.timestamp, T0);
  assert.equal(p.expires, T0 + 3600);
  assert.equal(p.formatVersion, 1);
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

Deno.test("bundle: checks run in SPEC order (expired wins over hash, hash over key)", async () => {
  const { bundle, opts } = await setup();
  const changed = new Uint8Array([...bundle, 0x41]);
  const r1 = await verifyBundle(changed, { ...opts, now: T0 + 7200 });
  assert.equal(r1.ok ? "ok" : r1.code, "BUNDLE_EXPIRED");
  const r2 = await verifyBundle(changed, { ...opts, trustedKeys: new Map() });
  assert.equal(r2.ok ? "ok" : r2.code, "BUNDLE_HASH_MISMATCH");
  const r3 = await verifyBundle(bundle, {
    ...opts,
    trustedKeys: new Map(),
    minVersionExclusive: 99,
  });
  assert.equal(r3.ok ? "ok" : r3.code, "BUNDLE_UNTRUSTED_KEY");
});

async function formatFail(bytes: Uint8Array, opts: VerifyOptions) {
  const r = await verifyBundle(bytes, opts);
  assert.equal(r.ok, false);
  if (r.ok) throw new Error("unreachable");
  assert.equal(r.code, "BUNDLE_FORMAT", r.message);
  return r;
}

Deno.test("bundle: malformed headers name the line and field", async () => {
  const { bundle, opts } = await setup();
  const text = dec.decode(bundle);
  const lines = text.split("\n");

  let r = await formatFail(enc.encode(text.replace("AEGIS-POLICY-BUNDLE-V1", "AEGIS-X")), opts);
  assert.equal(r.line, 1);
  assert.match(r.message, /Line 1 .*AEGIS-POLICY-BUNDLE-V1/);

  r = await formatFail(setField(bundle, "policy_version", "05"), opts);
  assert.equal(r.line, 3);
  assert.equal(r.field, "policy_version");
  assert.match(r.message, /Line 3: field "policy_version" is "05"/);

  r = await formatFail(setField(bundle, "timestamp", "-1"), opts);
  assert.equal(r.field, "timestamp");

  r = await formatFail(setField(bundle, "signature", "ab"), opts);
  assert.equal(r.line, 7);
  assert.match(r.message, /"signature" must be 128 lower-case hex/);

  r = await formatFail(setField(bundle, "signer_key", "A".repeat(64)), opts);
  assert.match(r.message, /upper case/);

  r = await formatFail(setField(bundle, "format_version", "2"), opts);
  assert.equal(r.field, "format_version");
  assert.match(r.message, /not supported/);

  // Unknown field.
  r = await formatFail(enc.encode(text.replace("---\n", "comment: hi\n---\n")), opts);
  assert.equal(r.field, "comment");
  assert.equal(r.line, 9);

  // Duplicate field.
  r = await formatFail(enc.encode(text.replace("---\n", `${lines[2]}\n---\n`)), opts);
  assert.match(r.message, /appears again \(first on line 3\)/);

  // Missing field.
  r = await formatFail(enc.encode(text.replace(/^expires: .*\n/m, "")), opts);
  assert.equal(r.field, "expires");
  assert.match(r.message, /lacks field "expires"/);

  // Not "field: value".
  r = await formatFail(enc.encode(text.replace("timestamp: ", "timestamp:")), opts);
  assert.equal(r.line, 4);

  // CRLF header.
  r = await formatFail(
    enc.encode(text.replace("format_version: 1\n", "format_version: 1\r\n")),
    opts,
  );
  assert.match(r.message, /CR/);
  assert.equal(r.line, 2);
});

Deno.test("bundle: missing --- line, empty input, garbage", async () => {
  const { bundle, opts } = await setup();
  const text = dec.decode(bundle);
  let r = await formatFail(enc.encode(text.replace("---\n", "")), opts);
  assert.match(r.message, /"---"/);
  r = await formatFail(enc.encode(text.slice(0, text.indexOf("---"))), opts);
  assert.match(r.message, /No "---" line/);
  r = await formatFail(new Uint8Array(), opts);
  assert.match(r.message, /empty/);
  r = await formatFail(new Uint8Array(100_000).fill(0x41), opts);
  assert.match(r.message, /No "---" line/);
  assert.throws(() => parseBundle(enc.encode("hello\n")), { code: "BUNDLE_FORMAT" });
});

Deno.test("signBundle refuses bad numbers and expires <= timestamp", async () => {
  const { kp } = await setup();
  const base = { secretKey: kp.secretPkcs8, policyVersion: 1, timestamp: T0, expires: T0 + 1 };
  await assert.rejects(signBundle(BODY, { ...base, expires: T0 }), { code: "USAGE" });
  await assert.rejects(signBundle(BODY, { ...base, policyVersion: -1 }), { code: "USAGE" });
  await assert.rejects(signBundle(BODY, { ...base, timestamp: 1.5 }), { code: "USAGE" });
  await assert.rejects(
    signBundle(BODY, { ...base, secretKey: new Uint8Array(48) }),
    { code: "USAGE" },
  );
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
