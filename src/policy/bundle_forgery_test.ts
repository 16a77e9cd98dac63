/**
 * The bundle forgeries of issue 12, replayed against format v2: each is
 * refused with its code, and through the apply path none moves the
 * anti-rollback counter or touches the maps.
 */
import assert from "node:assert/strict";
import { type BundleErrorCode, signBundle, verifyBundle, type VerifyOptions } from "./bundle.ts";
import { addKey, fingerprint, generateKeyPair, type KeyPairBytes } from "./keys.ts";
import { readCounter } from "./atomic.ts";
import { applyPolicyBytes } from "./apply.ts";
import { PolicyRejectedError } from "./store.ts";
import { fakeApplyDeps } from "./fake_maps_testing.ts";
import { toHex } from "../util/bytes.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const BODY = enc.encode("version=1\n[deny_path]\n/usr/bin/nc\n");

function field(bundle: Uint8Array, name: string): string {
  const m = new RegExp(`^${name}: (.*)$`, "m").exec(dec.decode(bundle));
  assert.ok(m, name);
  return m[1]!;
}

/** Rewrite header fields of a bundle as text, the way the red team did. */
function rewrite(bundle: Uint8Array, changes: Record<string, string>): Uint8Array {
  let text = dec.decode(bundle);
  for (const [name, value] of Object.entries(changes)) {
    const re = new RegExp(`^${name}: .*$`, "m");
    assert.ok(re.test(text), name);
    text = text.replace(re, `${name}: ${value}`);
  }
  return enc.encode(text);
}

async function sign(kp: KeyPairBytes, policyVersion: number, timestamp: number, expires: number) {
  return await signBundle(BODY, {
    secretKey: kp.secretPkcs8.slice(),
    policyVersion,
    timestamp,
    expires,
  });
}

/** The three digit-moving forgeries, applied to any bundle as string edits. */
function forgeries(old: Uint8Array, expired: Uint8Array): [string, Uint8Array][] {
  const v = field(old, "policy_version");
  const t = field(old, "timestamp");
  const te = field(expired, "timestamp");
  const ee = field(expired, "expires");
  return [
    // policy_version 7 -> 71, timestamp 1796005911 -> 796005911
    [
      "digit moved from timestamp to policy_version",
      rewrite(old, {
        policy_version: v + t[0],
        timestamp: t.slice(1),
      }),
    ],
    // timestamp 1796005923 / expires 1796005924 -> 179600592 / 31796005924
    [
      "expired bundle revived by moving a digit to expires",
      rewrite(expired, {
        timestamp: te.slice(0, -1),
        expires: te.slice(-1) + ee,
      }),
    ],
    // policy_version 7179600591 + timestamp 1: locks out every later bundle
    [
      "lock-out: policy_version 7179600591 + timestamp 1",
      rewrite(old, {
        policy_version: v + t.slice(0, -1),
        timestamp: t.slice(-1),
      }),
    ],
    [
      "extra header line constructor: a{undefined}",
      enc.encode(
        dec.decode(old).replace("---\n", "constructor: a{undefined}\n---\n"),
      ),
    ],
    [
      "extra header line __proto__: x",
      enc.encode(
        dec.decode(old).replace("---\n", "__proto__: x\n---\n"),
      ),
    ],
    [
      "extra header line toString: 1",
      enc.encode(
        dec.decode(old).replace("signer_key: ", "toString: 1\nsigner_key: "),
      ),
    ],
  ];
}

Deno.test("forgeries of issue 12 fail v2 verification with the expected code", async () => {
  const kp = await generateKeyPair();
  const T = 1796005911;
  const old = await sign(kp, 7, T, T + 30 * 86400);
  const expired = await sign(kp, 7, 1796005923, 1796005924);
  const opts: VerifyOptions = {
    trustedKeys: new Map([[await fingerprint(kp.publicRaw), kp.publicRaw]]),
    now: T + 60,
    minVersionExclusive: 8,
  };
  const expected: BundleErrorCode[] = [
    "BUNDLE_FORMAT", // validity 1000000000+ s > 366 days
    "BUNDLE_FORMAT", // same
    "BUNDLE_FORMAT", // same
    "BUNDLE_FORMAT", // unknown field
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT",
  ];
  const fs = forgeries(old, expired);
  assert.equal(fs.length, expected.length);
  for (const [i, [name, bytes]] of fs.entries()) {
    const r = await verifyBundle(bytes, opts);
    assert.equal(r.ok ? "ok" : r.code, expected[i], name);
  }
  // The same lies kept inside every bound: the signature alone refuses them.
  const inBounds: [string, Record<string, string>, Uint8Array][] = [
    ["policy_version 7 -> 71", { policy_version: "71" }, old],
    ["policy_version 7 -> 7179600591", { policy_version: "7179600591" }, old],
    ["expires moved later", { expires: String(T + 300) }, expired],
    ["timestamp moved earlier", { timestamp: String(T - 1) }, old],
  ];
  for (const [name, changes, b] of inBounds) {
    const r = await verifyBundle(rewrite(b, changes), opts);
    assert.equal(r.ok ? "ok" : r.code, "BUNDLE_BAD_SIGNATURE", name);
  }
  // and the untouched bundles behave: old is a rollback, expired is expired
  assert.equal((await verifyBundle(old, opts) as { code: string }).code, "BUNDLE_ROLLBACK");
  assert.equal((await verifyBundle(expired, opts) as { code: string }).code, "BUNDLE_EXPIRED");
});

const tmpUid = (() => {
  const d = Deno.makeTempDirSync();
  const uid = Deno.statSync(d).uid;
  Deno.removeSync(d);
  return uid;
})();

Deno.test({
  name: tmpUid === 0
    ? "forgeries through applyPolicyBytes: refused, counter and maps unchanged, no lock-out"
    : "forgeries through applyPolicyBytes (skipped: trusted keys must be root-owned; run as root)",
  ignore: tmpUid !== 0,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "aegis-forgery-" });
    try {
      const { fm, deps } = fakeApplyDeps(dir, { ownerUid: 0 });
      const kp = await generateKeyPair();
      Deno.writeTextFileSync(`${dir}/k.pub`, toHex(kp.publicRaw) + "\n");
      await addKey(`${dir}/k.pub`, deps.keysDir);
      const now = Math.floor(Date.now() / 1000);
      const old = await sign(kp, 7, now - 60, now + 30 * 86400);
      const v8 = await sign(kp, 8, now - 30, now + 30 * 86400);
      const expired = await sign(kp, 7, now - 100, now - 99);
      const counter = `${dir}/policy_version.json`;
      await applyPolicyBytes(deps, { file: "old.bundle", bytes: old });
      await applyPolicyBytes(deps, { file: "v8.bundle", bytes: v8 });
      assert.equal(readCounter(counter), 8);
      const config = () => new Map(fm.get("aegis_config").data);
      const before = config();
      for (const [name, bytes] of forgeries(old, expired)) {
        for (const requireSignature of [true, false]) {
          await assert.rejects(
            applyPolicyBytes(deps, { file: "f.bundle", bytes, requireSignature }),
            (e: Error) => {
              assert.ok(e instanceof PolicyRejectedError, name);
              assert.match(e.code, /^BUNDLE_/, name);
              return true;
            },
          );
          assert.equal(readCounter(counter), 8, `${name}: counter unchanged`);
          assert.deepEqual(config(), before, `${name}: maps unchanged`);
        }
      }
      // a v1 bundle (the format of the forgeries) is refused as such, with or without
      // --require-signature; it is never taken for a plain policy file
      const v1 = enc.encode(
        dec.decode(v8).replace(
          "AEGIS-POLICY-BUNDLE-V2\nformat_version: 2",
          "AEGIS-POLICY-BUNDLE-V1\nformat_version: 1",
        ),
      );
      for (const requireSignature of [true, false]) {
        await assert.rejects(
          applyPolicyBytes(deps, { file: "v1.bundle", bytes: v1, requireSignature }),
          { code: "BUNDLE_UNSUPPORTED_VERSION", message: /aegisbpf policy sign/ },
        );
      }
      assert.equal(readCounter(counter), 8);
      assert.deepEqual(config(), before);
      // no lock-out: the next real bundle still applies
      const v9 = await sign(kp, 9, now - 10, now + 86400);
      const r = await applyPolicyBytes(deps, { file: "v9.bundle", bytes: v9 });
      assert.deepEqual(r.signed?.policy_version, 9);
      assert.equal(readCounter(counter), 9);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
