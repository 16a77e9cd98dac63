/**
 * Fuzz target "bundle": the signed-bundle parser and verifier
 * (src/policy/bundle.ts), through their public functions only
 * (parseBundle, verifyBundle, signBundle) so the harness outlives changes of
 * the bundle format. Seeds: the committed corpus plus bundles signed at run
 * time with a fresh key.
 *
 * Oracle beyond "no exception other than AegisError":
 * - verifyBundle answers `{ok: boolean}` (it never throws for a bad bundle);
 * - a refusal carries a BUNDLE_* code and a message;
 * - a mutant that verifies must say exactly what its signed original said:
 *   same body, policy version, timestamp and expiry (anything else is a
 *   forgery: the signature covered something other than what was applied).
 *
 * @module
 */
import { AegisError } from "../../src/errors.ts";
import * as bundleModule from "../../src/policy/bundle.ts";
import { fingerprint, generateKeyPair } from "../../src/policy/keys.ts";
import { assertClean, expect, fuzz, loadCorpus } from "./lib.ts";

/** The public functions used, typed loosely so a format change keeps this compiling. */
interface VerifyResultLike {
  ok: boolean;
  code?: string;
  message?: string;
  body?: Uint8Array;
  policyVersion?: number;
  header?: Record<string, unknown>;
}
const bundle = bundleModule as unknown as {
  parseBundle(bytes: Uint8Array): unknown;
  verifyBundle(bytes: Uint8Array, opts: Record<string, unknown>): Promise<VerifyResultLike>;
  signBundle(body: Uint8Array, opts: Record<string, unknown>): Promise<Uint8Array>;
};

const enc = new TextEncoder();
/** Signing time of the run-time seeds; verification happens 10 s later. */
const T0 = 1_767_225_600;

/** What a verified bundle must keep from the original that was signed. */
interface Signed {
  body: Uint8Array;
  policyVersion: number;
  timestamp: number;
  expires: number;
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

Deno.test("fuzz bundle: parse and verify never crash and never accept a changed meaning", async () => {
  const kp = await generateKeyPair();
  const fp = await fingerprint(kp.publicRaw);
  const signed: Signed[] = [];
  const seeds = loadCorpus("bundle").map((c) => c.bytes);
  const bodies = [
    "version=1\n[deny_path]\n/usr/bin/nc\n",
    "version=2\n[deny_port]\n4444\n[deny_ptrace]\n",
    "",
    "\0\xff binary body\n---\n",
  ];
  for (const [i, text] of bodies.entries()) {
    const s: Signed = {
      body: enc.encode(text),
      policyVersion: [7, 71, 1, 123456][i],
      timestamp: T0 - i,
      expires: T0 + 3600 * (i + 1),
    };
    const b = await bundle.signBundle(s.body, {
      secretKey: kp.secretPkcs8.slice(),
      policyVersion: s.policyVersion,
      timestamp: s.timestamp,
      expires: s.expires,
    });
    signed.push(s);
    seeds.push(b);
  }
  const opts = {
    trustedKeys: new Map([[fp, kp.publicRaw]]),
    now: T0 + 10,
    minVersionExclusive: 0,
  };
  // every run-time seed must verify as is, or the oracle below checks nothing
  for (let i = seeds.length - signed.length; i < seeds.length; i++) {
    const r = await bundle.verifyBundle(seeds[i], opts);
    expect(r.ok, `seed bundle ${i} does not verify: ${r.code} ${r.message}`);
  }

  const run = async (input: Uint8Array) => {
    try {
      bundle.parseBundle(input);
    } catch (e) {
      if (!(e instanceof AegisError)) throw e; // a documented refusal; verify must refuse too
    }
    const r = await bundle.verifyBundle(input, opts);
    expect(typeof r === "object" && r !== null && typeof r.ok === "boolean", "no {ok} answer");
    if (!r.ok) {
      expect(
        typeof r.code === "string" && r.code.startsWith("BUNDLE_") && typeof r.message === "string",
        `refusal without a BUNDLE_* code and message: ${JSON.stringify(r).slice(0, 300)}`,
      );
      return r.code;
    }
    const h = r.header ?? {};
    const match = signed.find((s) =>
      sameBytes(r.body, s.body) && r.policyVersion === s.policyVersion &&
      h.timestamp === s.timestamp && h.expires === s.expires
    );
    expect(
      match !== undefined,
      `forgery: a changed bundle verified as policy_version ${r.policyVersion}, timestamp ${h.timestamp}, ` +
        `expires ${h.expires}, body ${r.body?.length} bytes; no signed original says that`,
    );
    return "verified";
  };
  const r = await fuzz({
    target: "bundle",
    seeds,
    run,
    maxInput: 64 * 1024,
  });
  assertClean(r);
});
