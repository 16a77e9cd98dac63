/**
 * Signed policy bundles (SPEC §7).
 *
 * ```
 * AEGIS-POLICY-BUNDLE-V1
 * format_version: 1
 * policy_version: 7
 * timestamp: 1767225600
 * expires: 1769904000
 * signer_key: <64 hex: raw Ed25519 public key>
 * signature: <128 hex: Ed25519 signature>
 * policy_sha256: <64 hex: SHA-256 of the body>
 * ---
 * <policy body, bytes as they are>
 * ```
 *
 * Header lines end with LF (a CR is refused, never stripped); each field
 * appears exactly once, in any order after the magic line; unknown fields are
 * refused; hex is lower case; integers are plain decimal (no sign, no leading
 * zeros). The signed message is the ASCII string
 * `policy_sha256 + decimal(policy_version) + decimal(timestamp) + decimal(expires)`.
 *
 * Verification order: format, expiry, body hash, trusted key, signature,
 * anti-rollback; the first failure is returned with its code.
 *
 * @module
 */
import { AegisError, UsageError } from "../errors.ts";
import { sha256Hex, toHex } from "../util/bytes.ts";
import { readCounter } from "./atomic.ts";
import {
  DEFAULT_KEYS_DIR,
  fingerprint as keyFingerprint,
  fromHex,
  importPublicKey,
  importSecretKey,
  loadTrustedKeys,
  publicKeyFromSecret,
} from "./keys.ts";

/** First line of every bundle. */
export const BUNDLE_MAGIC = "AEGIS-POLICY-BUNDLE-V1";
/** Largest header accepted before the `---` line. */
const MAX_HEADER_BYTES = 16 * 1024;

/** Failure codes of {@link verifyBundle}, in the order they are checked. */
export type BundleErrorCode =
  | "BUNDLE_FORMAT"
  | "BUNDLE_EXPIRED"
  | "BUNDLE_HASH_MISMATCH"
  | "BUNDLE_UNTRUSTED_KEY"
  | "BUNDLE_BAD_SIGNATURE"
  | "BUNDLE_ROLLBACK";

/** A malformed bundle: names the line (1-based) and the field when known. */
export class BundleFormatError extends AegisError {
  readonly line: number | undefined;
  readonly field: string | undefined;
  constructor(message: string, line?: number, field?: string) {
    super("BUNDLE_FORMAT", message);
    this.line = line;
    this.field = field;
  }
}

/** The header fields of a bundle. */
export interface BundleHeader {
  formatVersion: 1;
  policyVersion: number;
  timestamp: number;
  expires: number;
  /** 64 lower-case hex: the raw Ed25519 public key. */
  signerKey: string;
  /** 128 lower-case hex. */
  signature: string;
  /** 64 lower-case hex. */
  policySha256: string;
}

/** A parsed (not yet verified) bundle. */
export interface ParsedBundle extends BundleHeader {
  body: Uint8Array;
}

type FieldSpec = { key: keyof BundleHeader; kind: "int" | "hex"; hexLen?: number };
const FIELDS: Record<string, FieldSpec> = {
  format_version: { key: "formatVersion", kind: "int" },
  policy_version: { key: "policyVersion", kind: "int" },
  timestamp: { key: "timestamp", kind: "int" },
  expires: { key: "expires", kind: "int" },
  signer_key: { key: "signerKey", kind: "hex", hexLen: 64 },
  signature: { key: "signature", kind: "hex", hexLen: 128 },
  policy_sha256: { key: "policySha256", kind: "hex", hexLen: 64 },
};

const DECIMAL = /^(0|[1-9][0-9]*)$/;

function show(s: string): string {
  return JSON.stringify(s.length > 80 ? s.slice(0, 80) + "…" : s);
}

/**
 * Parse a bundle's header and split off its body. Throws
 * {@link BundleFormatError} (code `BUNDLE_FORMAT`) naming the line and field.
 * Does no cryptography: use {@link verifyBundle} before trusting anything.
 */
export function parseBundle(bytes: Uint8Array): ParsedBundle {
  const dec = new TextDecoder("utf-8", { fatal: true });
  const seen = new Map<string, number>();
  const out: Record<string, number | string> = {};
  let pos = 0;
  let lineNo = 0;
  for (;;) {
    lineNo++;
    const nl = bytes.indexOf(0x0a, pos);
    if (nl < 0 || nl > MAX_HEADER_BYTES) {
      if (lineNo === 1 && bytes.length === 0) {
        throw new BundleFormatError("The bundle is empty.", 1);
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
    pos = nl + 1;
    if (line.endsWith("\r")) {
      throw new BundleFormatError(
        `Line ${lineNo} ends with CR (Windows line ending); bundle header lines end with LF only.`,
        lineNo,
      );
    }
    if (lineNo === 1) {
      if (line !== BUNDLE_MAGIC) {
        throw new BundleFormatError(
          `Line 1 is ${show(line)}, expected "${BUNDLE_MAGIC}": not an aegisbpf policy bundle ` +
            `(or an unsupported version).`,
          1,
        );
      }
      continue;
    }
    if (line === "---") break;
    const m = /^([a-z0-9_]+): (.*)$/.exec(line);
    if (!m) {
      throw new BundleFormatError(
        `Line ${lineNo} is ${show(line)}, expected "field: value" or "---".`,
        lineNo,
      );
    }
    const [, name, value] = m as unknown as [string, string, string];
    const spec = FIELDS[name];
    if (!spec) {
      throw new BundleFormatError(
        `Line ${lineNo}: unknown header field "${name}" (known: ${
          Object.keys(FIELDS).join(", ")
        }).`,
        lineNo,
        name,
      );
    }
    const first = seen.get(name);
    if (first !== undefined) {
      throw new BundleFormatError(
        `Line ${lineNo}: field "${name}" appears again (first on line ${first}).`,
        lineNo,
        name,
      );
    }
    seen.set(name, lineNo);
    if (spec.kind === "int") {
      const n = Number(value);
      if (!DECIMAL.test(value) || !Number.isSafeInteger(n)) {
        throw new BundleFormatError(
          `Line ${lineNo}: field "${name}" is ${show(value)}, expected a non-negative decimal ` +
            `integer without sign or leading zeros.`,
          lineNo,
          name,
        );
      }
      out[spec.key] = n;
    } else {
      if (!new RegExp(`^[0-9a-f]{${spec.hexLen}}$`).test(value)) {
        throw new BundleFormatError(
          `Line ${lineNo}: field "${name}" must be ${spec.hexLen} lower-case hex characters, ` +
            `got ${value.length} characters${/[A-F]/.test(value) ? " (upper case)" : ""}.`,
          lineNo,
          name,
        );
      }
      out[spec.key] = value;
    }
  }
  const missing = Object.keys(FIELDS).filter((k) => !seen.has(k));
  if (missing.length > 0) {
    throw new BundleFormatError(
      `The header (lines 2-${lineNo - 1}) lacks field${missing.length > 1 ? "s" : ""} ` +
        `${missing.map((m) => `"${m}"`).join(", ")}.`,
      lineNo,
      missing[0],
    );
  }
  if (out.formatVersion !== 1) {
    throw new BundleFormatError(
      `Line ${seen.get("format_version")}: format_version ${out.formatVersion} is not ` +
        `supported (only 1).`,
      seen.get("format_version"),
      "format_version",
    );
  }
  return { ...(out as unknown as BundleHeader), body: bytes.slice(pos) };
}

/** The message an Ed25519 signature covers. */
export function signedMessage(
  h: Pick<BundleHeader, "policySha256" | "policyVersion" | "timestamp" | "expires">,
): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(
    `${h.policySha256}${h.policyVersion}${h.timestamp}${h.expires}`,
  );
}

/** Options of {@link signBundle}. */
export interface SignOptions {
  /** Ed25519 private key: an extractable CryptoKey or PKCS#8 DER bytes. */
  secretKey: CryptoKey | Uint8Array;
  policyVersion: number;
  /** Unix seconds. */
  timestamp: number;
  /** Unix seconds; must be after `timestamp`. */
  expires: number;
}

function checkInt(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new UsageError(`${name} must be a non-negative integer, got ${v}.`);
  }
}

/** Build a signed bundle around `body` (kept byte for byte). */
export async function signBundle(body: Uint8Array, opts: SignOptions): Promise<Uint8Array> {
  checkInt("policy_version", opts.policyVersion);
  checkInt("timestamp", opts.timestamp);
  checkInt("expires", opts.expires);
  if (opts.expires <= opts.timestamp) {
    throw new UsageError(
      `expires (${opts.expires}) must be later than timestamp (${opts.timestamp}).`,
    );
  }
  const secret = opts.secretKey instanceof Uint8Array
    ? await importSecretKey(opts.secretKey)
    : opts.secretKey;
  const pub = await publicKeyFromSecret(secret);
  const policySha256 = await sha256Hex(new Uint8Array(body));
  const msg = signedMessage({ ...opts, policySha256 });
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, secret, msg));
  const header = [
    BUNDLE_MAGIC,
    `format_version: 1`,
    `policy_version: ${opts.policyVersion}`,
    `timestamp: ${opts.timestamp}`,
    `expires: ${opts.expires}`,
    `signer_key: ${toHex(pub)}`,
    `signature: ${toHex(sig)}`,
    `policy_sha256: ${policySha256}`,
    `---`,
    ``,
  ].join("\n");
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(h.length + body.length);
  out.set(h, 0);
  out.set(body, h.length);
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
 * check failed (format, expiry, body hash, trusted key, signature, rollback,
 * in that order).
 */
export async function verifyBundle(
  bytes: Uint8Array,
  opts: VerifyOptions,
): Promise<VerifyOk | VerifyFail> {
  let b: ParsedBundle;
  try {
    b = parseBundle(bytes);
  } catch (e) {
    if (e instanceof BundleFormatError) {
      const r: VerifyFail = fail("BUNDLE_FORMAT", e.message);
      if (e.line !== undefined) r.line = e.line;
      if (e.field !== undefined) r.field = e.field;
      return r;
    }
    throw e;
  }
  const now = opts.now ?? Math.floor(Date.now() / 1000);
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
      signedMessage(b),
    );
  } catch {
    ok = false;
  }
  if (!ok) {
    return fail(
      "BUNDLE_BAD_SIGNATURE",
      `The signature does not verify with trusted key ${signer.slice(0, 16)}: the header ` +
        `(policy_version, timestamp, expires or policy_sha256) or the signature was altered.`,
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
  const { body, ...header } = b;
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
  const { keys, warnings } = await loadTrustedKeys(
    opts.keysDir ?? DEFAULT_KEYS_DIR,
    opts.ownerUid === undefined ? {} : { ownerUid: opts.ownerUid },
  );
  const min = readCounter(opts.counterPath ?? DEFAULT_COUNTER_PATH);
  const v: VerifyOptions = { trustedKeys: keys, minVersionExclusive: min };
  if (opts.now !== undefined) v.now = opts.now;
  return { result: await verifyBundle(bytes, v), warnings };
}
