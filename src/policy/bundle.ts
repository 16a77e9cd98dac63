/**
 * Signed policy bundles, format v2 (docs/signing.md).
 *
 * ```
 * AEGIS-POLICY-BUNDLE-V2
 * format_version: 2
 * policy_version: 7
 * timestamp: 1767225600
 * expires: 1769904000
 * signer_key: <64 hex: raw Ed25519 public key>
 * policy_sha256: <64 hex: SHA-256 of the body>
 * signature: <128 hex: Ed25519 signature>
 * ---
 * <policy body, bytes as they are>
 * ```
 *
 * The header is canonical: exactly these lines, in this order, each ending
 * with LF (a CR is refused, never stripped); hex is lower case; integers are
 * plain decimal (no sign, no leading zeros). Unknown and repeated fields are
 * refused by name (field names are looked up in a `Map`, never on a plain
 * object, so `constructor` or `__proto__` are unknown fields like any other).
 *
 * The signature covers {@link SIGNING_CONTEXT} followed by the header bytes
 * exactly as written, from the first byte of the file up to (excluding) the
 * `signature: ` line. Every field is on its own LF-terminated line, values
 * cannot contain LF, names and order are fixed, so those bytes determine the
 * field values and vice versa (the v1 concatenation did not: digits could move
 * between fields). The body is bound through `policy_sha256`.
 *
 * Bounds, checked as format (independent of the clock): policy_version in
 * 1..{@link MAX_POLICY_VERSION}; timestamp and expires at most
 * {@link MAX_UNIX_TIME}; expires > timestamp and expires - timestamp at most
 * {@link MAX_VALIDITY_SECONDS}. Against the clock: timestamp at most
 * {@link MAX_CLOCK_SKEW_SECONDS} in the future, now before expires.
 *
 * Format v1 (`AEGIS-POLICY-BUNDLE-V1`) is refused with
 * `BUNDLE_UNSUPPORTED_VERSION` and a message saying how to re-sign.
 *
 * Verification order: format, validity period (not yet valid, expired), body
 * hash, trusted key, signature, anti-rollback; the first failure is returned
 * with its code.
 *
 * @module
 */
import { DEFAULT_KEYS_DIR } from "../contracts.ts";
import { AegisError, UsageError } from "../errors.ts";
import { fromHex, sha256Hex, toHex } from "../util/bytes.ts";
import { readCounter } from "./atomic.ts";
import {
  fingerprint as keyFingerprint,
  importPublicKey,
  importSecretKey,
  loadTrustedKeys,
  publicKeyFromSecret,
  type TrustedKeys,
} from "./keys.ts";
import { MAX_FILE_BYTES } from "./parse.ts";

/**
 * Every bundle, of any format version, starts with these bytes (used to tell
 * a bundle from a plain policy file). The full first line is
 * {@link BUNDLE_FIRST_LINE}.
 */
export const BUNDLE_MAGIC = "AEGIS-POLICY-BUNDLE-";
/** First line of a format v2 bundle, the only format accepted and written. */
export const BUNDLE_FIRST_LINE = "AEGIS-POLICY-BUNDLE-V2";
/** The format version written and accepted. */
export const BUNDLE_FORMAT_VERSION = 2;
/** Domain separation: the signed message starts with these 26 bytes (NUL-terminated). */
export const SIGNING_CONTEXT = "aegisbpf policy bundle v2\0";
/** Largest policy_version accepted or signed (2^53 - 1: exact in JSON and JavaScript). */
export const MAX_POLICY_VERSION = Number.MAX_SAFE_INTEGER;
/** Latest timestamp/expires accepted: 9999-12-31T23:59:59Z. */
export const MAX_UNIX_TIME = 253_402_300_799;
/** Longest validity, expires - timestamp: 366 days. */
export const MAX_VALIDITY_SECONDS = 366 * 86_400;
/** How far in the future a bundle's timestamp may be (signer clock ahead): 300 s. */
export const MAX_CLOCK_SKEW_SECONDS = 300;
/** Largest header accepted before the `---` line. */
export const MAX_HEADER_BYTES = 16 * 1024;
/** Largest bundle: the largest policy file plus the largest header. */
export const MAX_BUNDLE_BYTES = MAX_FILE_BYTES + MAX_HEADER_BYTES;

/** Failure codes of {@link verifyBundle}, in the order they are checked. */
export type BundleErrorCode =
  | "BUNDLE_FORMAT"
  | "BUNDLE_UNSUPPORTED_VERSION"
  | "BUNDLE_NOT_YET_VALID"
  | "BUNDLE_EXPIRED"
  | "BUNDLE_HASH_MISMATCH"
  | "BUNDLE_UNTRUSTED_KEY"
  | "BUNDLE_BAD_SIGNATURE"
  | "BUNDLE_ROLLBACK";

/** A malformed bundle: names the line (1-based) and the field when known. */
export class BundleFormatError extends AegisError {
  readonly line: number | undefined;
  readonly field: string | undefined;
  constructor(
    message: string,
    line?: number,
    field?: string,
    code: "BUNDLE_FORMAT" | "BUNDLE_UNSUPPORTED_VERSION" = "BUNDLE_FORMAT",
  ) {
    super(code, message);
    this.line = line;
    this.field = field;
  }
}

/** The header fields of a bundle. */
export interface BundleHeader {
  formatVersion: 2;
  policyVersion: number;
  timestamp: number;
  expires: number;
  /** 64 lower-case hex: the raw Ed25519 public key. */
  signerKey: string;
  /** 64 lower-case hex. */
  policySha256: string;
  /** 128 lower-case hex. */
  signature: string;
}

/** A parsed (not yet verified) bundle. */
export interface ParsedBundle extends BundleHeader {
  body: Uint8Array;
  /** The signed header bytes: from the start up to (excluding) the signature line. */
  signedHeader: Uint8Array;
}

type IntField = { kind: "int"; min: number; max: number };
type HexField = { kind: "hex"; hexLen: number };
/** The header fields in their required order. */
const FIELDS = new Map<string, IntField | HexField>([
  ["format_version", { kind: "int", min: 0, max: Number.MAX_SAFE_INTEGER }],
  ["policy_version", { kind: "int", min: 1, max: MAX_POLICY_VERSION }],
  ["timestamp", { kind: "int", min: 0, max: MAX_UNIX_TIME }],
  ["expires", { kind: "int", min: 1, max: MAX_UNIX_TIME }],
  ["signer_key", { kind: "hex", hexLen: 64 }],
  ["policy_sha256", { kind: "hex", hexLen: 64 }],
  ["signature", { kind: "hex", hexLen: 128 }],
]);
const ORDER = [...FIELDS.keys()];

const DECIMAL = /^(0|[1-9][0-9]*)$/;
const FIRST_LINE = /^AEGIS-POLICY-BUNDLE-V([0-9]{1,6})$/;
const HEX = /^[0-9a-f]*$/;

function show(s: string): string {
  return JSON.stringify(s.length > 80 ? s.slice(0, 80) + "…" : s);
}

/** What to run to replace a bundle of an unsupported format. */
const RESIGN = "Re-sign the policy with this version: " +
  "aegisbpf policy sign <policy file> --key <secret key> --output <bundle> " +
  "(docs/signing.md)";

function checkFirstLine(line: string): void {
  if (line === BUNDLE_FIRST_LINE) return;
  const m = FIRST_LINE.exec(line);
  if (m && m[1] === "1") {
    throw new BundleFormatError(
      `Line 1 is "AEGIS-POLICY-BUNDLE-V1": bundle format v1 is no longer accepted (its ` +
        `signature does not bind the header fields unambiguously). ${RESIGN}.`,
      1,
      undefined,
      "BUNDLE_UNSUPPORTED_VERSION",
    );
  }
  if (m) {
    throw new BundleFormatError(
      `Line 1 is ${show(line)}: bundle format v${m[1]} is not supported by this aegisbpf ` +
        `(it reads format v2 only). Use a matching aegisbpf, or ${RESIGN}.`,
      1,
      undefined,
      "BUNDLE_UNSUPPORTED_VERSION",
    );
  }
  throw new BundleFormatError(
    `Line 1 is ${show(line)}, expected "${BUNDLE_FIRST_LINE}": not an aegisbpf policy bundle.`,
    1,
  );
}

function parseValue(
  lineNo: number,
  name: string,
  spec: IntField | HexField,
  value: string,
): number | string {
  if (spec.kind === "hex") {
    if (value.length !== spec.hexLen || !HEX.test(value)) {
      throw new BundleFormatError(
        `Line ${lineNo}: field "${name}" must be ${spec.hexLen} lower-case hex characters, ` +
          `got ${value.length} characters${/[A-F]/.test(value) ? " (upper case)" : ""}.`,
        lineNo,
        name,
      );
    }
    return value;
  }
  if (!DECIMAL.test(value)) {
    throw new BundleFormatError(
      `Line ${lineNo}: field "${name}" is ${show(value)}, expected a decimal integer ` +
        `without sign or leading zeros.`,
      lineNo,
      name,
    );
  }
  const n = value.length > 16 ? Infinity : Number(value);
  if (!Number.isSafeInteger(n) || n < spec.min || n > spec.max) {
    throw new BundleFormatError(
      `Line ${lineNo}: field "${name}" is ${show(value)}, outside ${spec.min}..${spec.max}.`,
      lineNo,
      name,
    );
  }
  return n;
}

/**
 * Parse a bundle's header and split off its body. Throws
 * {@link BundleFormatError} (code `BUNDLE_FORMAT`, or
 * `BUNDLE_UNSUPPORTED_VERSION` for another format version) naming the line
 * and field. Does no cryptography and no clock check: use
 * {@link verifyBundle} before trusting anything.
 */
export function parseBundle(bytes: Uint8Array): ParsedBundle {
  if (bytes.length > MAX_BUNDLE_BYTES) {
    throw new BundleFormatError(
      `The bundle is ${bytes.length} bytes; the limit is ${MAX_BUNDLE_BYTES} bytes ` +
        `(a ${MAX_FILE_BYTES}-byte policy and a ${MAX_HEADER_BYTES}-byte header).`,
    );
  }
  const dec = new TextDecoder("utf-8", { fatal: true });
  const values = new Map<string, number | string>();
  const seenOn = new Map<string, number>();
  let pos = 0;
  let lineNo = 0;
  let signedEnd = -1;
  for (;;) {
    lineNo++;
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0 || nl >= MAX_HEADER_BYTES) {
      if (lineNo === 1 && bytes.length === 0) {
        throw new BundleFormatError("The bundle is empty.", 1);
      }
      if (lineNo === 1) {
        // Say what the first line is, when it can be shown.
        const head = bytes.subarray(0, Math.min(bytes.length, 64));
        checkFirstLine(new TextDecoder().decode(head));
      }
      throw new BundleFormatError(
        `No "---" line ends the header (searched ${
          Math.min(bytes.length, MAX_HEADER_BYTES)
        } bytes, ${lineNo - 1} complete lines); the body must follow a line "---".`,
        lineNo,
      );
    }
    let line: string;
    try {
      line = dec.decode(bytes.subarray(pos, nl));
    } catch {
      throw new BundleFormatError(`Line ${lineNo} of the header is not valid UTF-8.`, lineNo);
    }
    const lineStart = pos;
    pos = nl + 1;
    if (line.endsWith("\r")) {
      throw new BundleFormatError(
        `Line ${lineNo} ends with CR (Windows line ending); bundle header lines end with LF only.`,
        lineNo,
      );
    }
    if (lineNo === 1) {
      checkFirstLine(line);
      continue;
    }
    const expected = ORDER[values.size];
    if (line === "---") {
      if (expected === undefined) break;
      const missing = ORDER.slice(values.size);
      throw new BundleFormatError(
        `Line ${lineNo}: the header ends but lacks field${missing.length > 1 ? "s" : ""} ` +
          `${missing.map((m) => `"${m}"`).join(", ")}.`,
        lineNo,
        missing[0],
      );
    }
    const m = /^([^:]{1,64}): (.*)$/.exec(line);
    if (!m) {
      throw new BundleFormatError(
        `Line ${lineNo} is ${show(line)}, expected ${
          expected === undefined ? `"---"` : `"${expected}: <value>"`
        }.`,
        lineNo,
      );
    }
    const name = m[1]!;
    const value = m[2]!;
    const spec = FIELDS.get(name);
    if (spec === undefined) {
      throw new BundleFormatError(
        `Line ${lineNo}: unknown header field ${show(name)} (known: ${ORDER.join(", ")}).`,
        lineNo,
        name,
      );
    }
    const first = seenOn.get(name);
    if (first !== undefined) {
      throw new BundleFormatError(
        `Line ${lineNo}: field "${name}" appears again (first on line ${first}).`,
        lineNo,
        name,
      );
    }
    if (name !== expected) {
      throw new BundleFormatError(
        `Line ${lineNo}: field "${name}" is out of place; expected ${
          expected === undefined ? `"---"` : `"${expected}"`
        } (the header fields come in a fixed order: ${ORDER.join(", ")}).`,
        lineNo,
        name,
      );
    }
    seenOn.set(name, lineNo);
    values.set(name, parseValue(lineNo, name, spec, value));
    if (name === "format_version" && values.get(name) !== BUNDLE_FORMAT_VERSION) {
      throw new BundleFormatError(
        `Line ${lineNo}: format_version ${value} does not match the first line ` +
          `"${BUNDLE_FIRST_LINE}" (expected ${BUNDLE_FORMAT_VERSION}).`,
        lineNo,
        name,
      );
    }
    if (name === "signature") signedEnd = lineStart;
  }
  const h: BundleHeader = {
    formatVersion: 2,
    policyVersion: values.get("policy_version") as number,
    timestamp: values.get("timestamp") as number,
    expires: values.get("expires") as number,
    signerKey: values.get("signer_key") as string,
    policySha256: values.get("policy_sha256") as string,
    signature: values.get("signature") as string,
  };
  const validity = checkValidity(h.timestamp, h.expires);
  if (validity !== null) {
    throw new BundleFormatError(
      `Lines ${seenOn.get("timestamp")}-${seenOn.get("expires")}: ${validity}`,
      seenOn.get("expires"),
      "expires",
    );
  }
  return { ...h, body: bytes.slice(pos), signedHeader: bytes.slice(0, signedEnd) };
}

/** Why timestamp/expires are not a valid period (clock independent), or null. */
function checkValidity(timestamp: number, expires: number): string | null {
  if (expires <= timestamp) {
    return `expires (${expires}) must be later than timestamp (${timestamp}).`;
  }
  if (expires - timestamp > MAX_VALIDITY_SECONDS) {
    return `the validity period expires - timestamp is ${expires - timestamp} s; the limit ` +
      `is ${MAX_VALIDITY_SECONDS} s (366 days).`;
  }
  return null;
}

/**
 * The message an Ed25519 signature covers: {@link SIGNING_CONTEXT} followed
 * by the header bytes from the first byte up to (excluding) the signature line.
 */
export function signedMessage(signedHeader: Uint8Array): Uint8Array<ArrayBuffer> {
  const ctx = new TextEncoder().encode(SIGNING_CONTEXT);
  const msg = new Uint8Array(ctx.length + signedHeader.length);
  msg.set(ctx, 0);
  msg.set(signedHeader, ctx.length);
  return msg;
}

/** Options of {@link signBundle}. */
export interface SignOptions {
  /** Ed25519 private key: an extractable CryptoKey or PKCS#8 DER bytes. */
  secretKey: CryptoKey | Uint8Array;
  /** 1..{@link MAX_POLICY_VERSION}. */
  policyVersion: number;
  /** Unix seconds, at most {@link MAX_UNIX_TIME}. */
  timestamp: number;
  /** Unix seconds: after `timestamp`, by at most {@link MAX_VALIDITY_SECONDS}. */
  expires: number;
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new UsageError(`${name} must be an integer in ${min}..${max}, got ${v}.`);
  }
}

/** Build a signed format v2 bundle around `body` (kept byte for byte). */
export async function signBundle(body: Uint8Array, opts: SignOptions): Promise<Uint8Array> {
  checkInt("policy_version", opts.policyVersion, 1, MAX_POLICY_VERSION);
  checkInt("timestamp", opts.timestamp, 0, MAX_UNIX_TIME);
  checkInt("expires", opts.expires, 1, MAX_UNIX_TIME);
  const validity = checkValidity(opts.timestamp, opts.expires);
  if (validity !== null) throw new UsageError(validity.charAt(0).toUpperCase() + validity.slice(1));
  if (body.length > MAX_FILE_BYTES) {
    throw new UsageError(
      `The policy is ${body.length} bytes; the limit is ${MAX_FILE_BYTES} bytes.`,
    );
  }
  const secret = opts.secretKey instanceof Uint8Array
    ? await importSecretKey(opts.secretKey)
    : opts.secretKey;
  const pub = await publicKeyFromSecret(secret);
  const policySha256 = await sha256Hex(new Uint8Array(body));
  const enc = new TextEncoder();
  const signedHeader = enc.encode(
    [
      BUNDLE_FIRST_LINE,
      `format_version: ${BUNDLE_FORMAT_VERSION}`,
      `policy_version: ${opts.policyVersion}`,
      `timestamp: ${opts.timestamp}`,
      `expires: ${opts.expires}`,
      `signer_key: ${toHex(pub)}`,
      `policy_sha256: ${policySha256}`,
      ``,
    ].join("\n"),
  );
  const sig = new Uint8Array(
    await crypto.subtle.sign({ name: "Ed25519" }, secret, signedMessage(signedHeader)),
  );
  const rest = enc.encode(`signature: ${toHex(sig)}\n---\n`);
  const out = new Uint8Array(signedHeader.length + rest.length + body.length);
  out.set(signedHeader, 0);
  out.set(rest, signedHeader.length);
  out.set(body, signedHeader.length + rest.length);
  return out;
}

/** Options of {@link verifyBundle}. */
export interface VerifyOptions {
  /** Trusted keys by full SHA-256 fingerprint: a CryptoKey, raw 32 bytes or 64 hex. */
  trustedKeys: Map<string, CryptoKey | Uint8Array | string>;
  /** Unix seconds (default: the current time). */
  now?: number;
  /** The stored anti-rollback counter: policy_version must be greater. */
  minVersionExclusive: number;
}

/** A verified bundle. */
export interface VerifyOk {
  ok: true;
  body: Uint8Array;
  policyVersion: number;
  /** Fingerprint (SHA-256 hex of the raw public key) of the signer. */
  signer: string;
  header: BundleHeader;
}

/** A refused bundle. */
export interface VerifyFail {
  ok: false;
  code: BundleErrorCode;
  message: string;
  /** Set for BUNDLE_FORMAT when the line is known. */
  line?: number;
  field?: string;
}

function fail(code: BundleErrorCode, message: string): VerifyFail {
  return { ok: false, code, message };
}

async function rawOf(k: CryptoKey | Uint8Array | string): Promise<Uint8Array | undefined> {
  if (typeof k === "string") return /^[0-9a-f]{64}$/i.test(k) ? fromHex(k) : undefined;
  if (k instanceof Uint8Array) return k;
  if (!k.extractable) return undefined;
  return new Uint8Array(await crypto.subtle.exportKey("raw", k));
}

function fmtTime(unix: number): string {
  const d = new Date(unix * 1000);
  return Number.isNaN(d.getTime()) ? String(unix) : `${unix} (${d.toISOString()})`;
}

/**
 * Verify a bundle. Never throws for a bad bundle: the result says which
 * check failed (format, validity period, body hash, trusted key, signature,
 * rollback, in that order). Changes nothing: the caller advances the
 * anti-rollback counter once the policy is applied.
 */
export async function verifyBundle(
  bytes: Uint8Array,
  opts: VerifyOptions,
): Promise<VerifyOk | VerifyFail> {
  const b = parseForVerify(bytes);
  return "ok" in b ? b : await verifyParsed(b, opts);
}

/** parseBundle, a format error as the VerifyFail verifyBundle returns (line and field kept). */
function parseForVerify(bytes: Uint8Array): ParsedBundle | VerifyFail {
  try {
    return parseBundle(bytes);
  } catch (e) {
    if (!(e instanceof BundleFormatError)) throw e;
    const r: VerifyFail = fail(e.code as BundleErrorCode, e.message);
    if (e.line !== undefined) r.line = e.line;
    if (e.field !== undefined) r.field = e.field;
    return r;
  }
}

/** verifyBundle's checks after the format: validity period, hash, key, signature, rollback. */
async function verifyParsed(b: ParsedBundle, opts: VerifyOptions): Promise<VerifyOk | VerifyFail> {
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  if (b.timestamp > now + MAX_CLOCK_SKEW_SECONDS) {
    return fail(
      "BUNDLE_NOT_YET_VALID",
      `The bundle's timestamp ${fmtTime(b.timestamp)} is ${b.timestamp - now} s in the ` +
        `future (it is now ${fmtTime(now)}; at most ${MAX_CLOCK_SKEW_SECONDS} s of clock skew ` +
        `is allowed). Check the clocks of this host and of the signing machine.`,
    );
  }
  if (now >= b.expires) {
    return fail(
      "BUNDLE_EXPIRED",
      `The bundle expired at ${fmtTime(b.expires)}; it is now ${fmtTime(now)}. ` +
        `Ask the signer for a freshly signed bundle.`,
    );
  }
  const actual = await sha256Hex(new Uint8Array(b.body));
  if (actual !== b.policySha256) {
    return fail(
      "BUNDLE_HASH_MISMATCH",
      `The policy body does not match the header: policy_sha256 is ${b.policySha256}, ` +
        `the body (${b.body.length} bytes) hashes to ${actual}. The body was changed after ` +
        `signing (or damaged in transit, e.g. line endings converted).`,
    );
  }
  const signerRaw = fromHex(b.signerKey);
  const signer = await keyFingerprint(signerRaw);
  const trusted = opts.trustedKeys.get(signer);
  const trustedRaw = trusted === undefined ? undefined : await rawOf(trusted);
  if (
    trusted === undefined ||
    (trustedRaw !== undefined && toHex(trustedRaw) !== b.signerKey)
  ) {
    return fail(
      "BUNDLE_UNTRUSTED_KEY",
      `The bundle is signed by key ${signer.slice(0, 16)} (fingerprint ${signer}), which is ` +
        `not among the ${opts.trustedKeys.size} trusted key(s). Install the signer's .pub ` +
        `file with "keys add" if it should be trusted.`,
    );
  }
  let ok = false;
  try {
    const key = trusted instanceof CryptoKey ? trusted : await importPublicKey(signerRaw);
    ok = await crypto.subtle.verify(
      { name: "Ed25519" },
      key,
      fromHex(b.signature),
      signedMessage(b.signedHeader),
    );
  } catch {
    ok = false;
  }
  if (!ok) {
    return fail(
      "BUNDLE_BAD_SIGNATURE",
      `The signature does not verify with trusted key ${signer.slice(0, 16)}: the header ` +
        `(policy_version, timestamp, expires, signer_key or policy_sha256) or the signature ` +
        `was altered.`,
    );
  }
  if (b.policyVersion <= opts.minVersionExclusive) {
    return fail(
      "BUNDLE_ROLLBACK",
      `policy_version ${b.policyVersion} is not above the last accepted version ` +
        `${opts.minVersionExclusive}: refusing a rollback or replay. Sign the policy with ` +
        `a policy_version of at least ${opts.minVersionExclusive + 1}.`,
    );
  }
  const { body, signedHeader: _signed, ...header } = b;
  return { ok: true, body, policyVersion: b.policyVersion, signer, header };
}

/** Default anti-rollback counter file. */
export const DEFAULT_COUNTER_PATH = "/var/lib/aegisbpf/policy_version.json";

/** Options of {@link verifyBundleWithState}. */
export interface VerifyStateOptions {
  /** Trusted key folder (default /etc/aegisbpf/keys). */
  keysDir?: string;
  /** Anti-rollback counter file (default {@link DEFAULT_COUNTER_PATH}). */
  counterPath?: string;
  /** Unix seconds (default: now). */
  now?: number;
  /** Owner uid required of the key folder and files (default 0). */
  ownerUid?: number;
}

/**
 * Verify against the installed trusted keys and the stored counter. The
 * counter is NOT advanced: once the policy is applied, call
 * `writeCounter(counterPath, result.policyVersion)` (atomic.ts). Warnings
 * are the skipped key files, for the caller to log.
 */
export async function verifyBundleWithState(
  bytes: Uint8Array,
  opts: VerifyStateOptions = {},
): Promise<{ result: VerifyOk | VerifyFail; warnings: string[] }> {
  const { keys, warnings, counter } = await loadVerifyState(opts);
  const v: VerifyOptions = { trustedKeys: keys, minVersionExclusive: counter };
  if (opts.now !== undefined) v.now = opts.now;
  return { result: await verifyBundle(bytes, v), warnings };
}

/**
 * What a verification against the installed state reads: the trusted keys
 * (warnings: the skipped key files) and the anti-rollback counter.
 */
async function loadVerifyState(
  opts: VerifyStateOptions,
): Promise<TrustedKeys & { counter: number }> {
  const { keys, warnings } = await loadTrustedKeys(
    opts.keysDir ?? DEFAULT_KEYS_DIR,
    opts.ownerUid === undefined ? {} : { ownerUid: opts.ownerUid },
  );
  return { keys, warnings, counter: readCounter(opts.counterPath ?? DEFAULT_COUNTER_PATH) };
}

/**
 * Verify the bundle a running policy was applied from, again (the restore
 * at start): the signature against the trusted keys as they are now, and
 * the counter allowing this very version (it was raised to it by the apply)
 * but no older one. The validity period is judged at the bundle's own
 * timestamp: a bundle that was valid when applied keeps enforcing after it
 * expires (a warning says so) — a reboot must not turn a node without a
 * newer bundle into one that refuses to start.
 */
export async function verifyAppliedBundle(
  bytes: Uint8Array,
  opts: VerifyStateOptions = {},
): Promise<{ result: VerifyOk | VerifyFail; warnings: string[] }> {
  const b = parseForVerify(bytes);
  // a format error is reported before the keys and the counter are read
  if ("ok" in b) return { result: b, warnings: [] };
  const { keys, warnings, counter } = await loadVerifyState(opts);
  const result = await verifyParsed(b, {
    trustedKeys: keys,
    minVersionExclusive: Math.max(0, counter - 1),
    now: b.timestamp,
  });
  if (!result.ok && result.code === "BUNDLE_ROLLBACK") {
    result.message = `it is an older bundle than the last one applied (policy_version ` +
      `${counter}): a rollback; apply a current bundle again`;
  }
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  if (result.ok && now >= b.expires) {
    warnings.push(
      `the applied bundle (policy_version ${result.policyVersion}) expired at ${
        fmtTime(b.expires)
      }; it stays enforced until a newer bundle is applied`,
    );
  }
  return { result, warnings };
}

/** Does `bytes` start like a signed bundle (its magic)? */
export function isBundle(bytes: Uint8Array): boolean {
  return new TextDecoder().decode(bytes.subarray(0, BUNDLE_MAGIC.length)) === BUNDLE_MAGIC;
}
