/**
 * Break-glass at start (docs/control.md): an operator who cannot reach the agent
 * (e.g. a policy locked them out) can force audit mode for the next start
 * by one of three means, checked in this order:
 *
 * 1. `aegisbpf.break_glass=1` on the kernel command line;
 * 2. a marker file (`/etc/aegisbpf/break_glass` or
 *    `/var/lib/aegisbpf/break_glass`): a regular file owned by root and
 *    not group/other-writable — anything else is ignored (and said why);
 * 3. a signed token file: JSON
 *    `{"format":"aegisbpf-break-glass-v1","payload":"<base64>","signer_key":"<64 hex>","signature":"<128 hex>"}`
 *    where the payload (base64 of JSON bytes) is
 *    `{"node","not_before","expires_at","reason"}` (unix seconds), the
 *    signature is Ed25519 over `"AEGIS-BREAK-GLASS-V1\n"` + the payload
 *    bytes by a trusted key (src/policy/keys.ts), valid for this node only,
 *    at most 24 h long, and only between not_before and expires_at.
 *
 * The daemon enters AUDIT_FALLBACK with BREAK_GLASS_ACTIVE and sets
 * AEGIS_CFG_BREAK_GLASS when {@link detectBreakGlass} says active.
 *
 * @module
 */
import { z } from "zod";
import { AegisError, UsageError } from "../errors.ts";
import { fingerprint, importPublicKey, publicKeyFromSecret } from "../policy/keys.ts";
import { decodeBase64, encodeBase64, fromHex, toHex } from "../util/bytes.ts";
import { modeString } from "./perms.ts";

export const BREAK_GLASS_CMDLINE = "aegisbpf.break_glass=1";
export const BREAK_GLASS_MARKER = "break_glass";
export const BREAK_GLASS_TOKEN_FILE = "break_glass.token";
export const TOKEN_FORMAT = "aegisbpf-break-glass-v1";
/** Domain separation: this prefix makes a token signature useless for anything else. */
export const TOKEN_SIGNING_PREFIX = "AEGIS-BREAK-GLASS-V1\n";
/** Longest allowed validity of a token. */
export const TOKEN_MAX_SECONDS = 24 * 3600;
const TOKEN_MAX_BYTES = 16 * 1024;

/** The token file. */
export const TokenFileSchema = z.strictObject({
  format: z.literal(TOKEN_FORMAT),
  payload: z.string().min(1).max(TOKEN_MAX_BYTES),
  signer_key: z.string().regex(/^[0-9a-f]{64}$/, "64 lower-case hex characters"),
  signature: z.string().regex(/^[0-9a-f]{128}$/, "128 lower-case hex characters"),
});

/** The signed payload. */
export const TokenPayloadSchema = z.strictObject({
  node: z.string().min(1).max(255),
  not_before: z.number().int().nonnegative(),
  expires_at: z.number().int().positive(),
  reason: z.string().min(1).max(512),
});
export type TokenPayload = z.infer<typeof TokenPayloadSchema>;

/** Options of {@link detectBreakGlass}. */
export interface BreakGlassOptions {
  /** kernel command line text (default: read /proc/cmdline) */
  cmdline?: string;
  /** marker files, e.g. [`${etcDir}/break_glass`, `${stateDir}/break_glass`] */
  markerPaths: string[];
  /** a token file, if one is configured (e.g. `${etcDir}/break_glass.token`) */
  tokenPath?: string;
  /** trusted Ed25519 public keys by fingerprint (loadTrustedKeys().keys) */
  trustedKeys: Map<string, Uint8Array>;
  /** this node's name as tokens must name it (default: the host name) */
  nodeName?: string;
  /** wall clock in ms */
  now: number;
  /** owner required of marker and token files (default 0: root) */
  ownerUid?: number;
}

/** The answer: active or not, by which means, and what was found but not accepted. */
export interface BreakGlassResult {
  active: boolean;
  source: "cmdline" | "marker" | "token" | null;
  detail: string;
  /** break-glass means that exist but were refused, with the reason (for the startup log) */
  ignored: string[];
}

/** Is `aegisbpf.break_glass=1` one of the command line's words? */
export function cmdlineRequestsBreakGlass(cmdline: string): boolean {
  return cmdline.trim().split(/\s+/).includes(BREAK_GLASS_CMDLINE);
}

/**
 * A file break-glass may trust: a regular file (no symlink) owned by
 * `owner`, not group/other-writable. null when missing; a reason string
 * when present but refused; "ok" when usable.
 */
function fileTrust(path: string, owner: number): "ok" | string | null {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    return `${path}: ${(e as Error).message}`;
  }
  if (st.isSymlink) return `${path}: a symbolic link (not followed)`;
  if (!st.isFile) return `${path}: not a regular file`;
  if (st.uid !== owner || ((st.mode ?? 0) & 0o022) !== 0) {
    return `${path}: owned by uid ${st.uid} with mode ${modeString(st.mode)}; ` +
      `must be owned by uid ${owner} and not group/other-writable`;
  }
  return "ok";
}

/** Decide whether break-glass is requested. Never throws for bad input: it is reported in `ignored`. */
export async function detectBreakGlass(opts: BreakGlassOptions): Promise<BreakGlassResult> {
  const owner = opts.ownerUid ?? 0;
  const ignored: string[] = [];
  let cmdline = opts.cmdline;
  if (cmdline === undefined) {
    try {
      cmdline = Deno.readTextFileSync("/proc/cmdline");
    } catch (e) {
      ignored.push(`/proc/cmdline: ${(e as Error).message}`);
      cmdline = "";
    }
  }
  if (cmdlineRequestsBreakGlass(cmdline)) {
    return {
      active: true,
      source: "cmdline",
      detail: `kernel command line has ${BREAK_GLASS_CMDLINE}`,
      ignored,
    };
  }
  for (const p of opts.markerPaths) {
    const t = fileTrust(p, owner);
    if (t === "ok") {
      return { active: true, source: "marker", detail: `marker file ${p}`, ignored };
    }
    if (t !== null) ignored.push(`marker ${t}`);
  }
  if (opts.tokenPath !== undefined) {
    const t = fileTrust(opts.tokenPath, owner);
    if (t === "ok") {
      try {
        const p = await verifyToken(
          Deno.readFileSync(opts.tokenPath),
          opts.trustedKeys,
          opts.nodeName ?? Deno.hostname(),
          opts.now,
        );
        return {
          active: true,
          source: "token",
          detail: `signed token ${opts.tokenPath} (node ${p.payload.node}, signer ${
            p.signer.slice(0, 16)
          }, until ${new Date(p.payload.expires_at * 1000).toISOString()}): ${p.payload.reason}`,
          ignored,
        };
      } catch (e) {
        ignored.push(`token ${opts.tokenPath}: ${(e as Error).message}`);
      }
    } else if (t !== null) {
      ignored.push(`token ${t}`);
    }
  }
  return { active: false, source: null, detail: "no break-glass request", ignored };
}

function tokenError(message: string): AegisError {
  return new AegisError("BREAK_GLASS_TOKEN_INVALID", message);
}

/**
 * Verify a token file's bytes: format, trusted signer, signature, then the
 * payload (node, validity window ≤ 24 h, now inside it). Throws
 * BREAK_GLASS_TOKEN_INVALID naming the first failed check.
 */
export async function verifyToken(
  bytes: Uint8Array,
  trustedKeys: Map<string, Uint8Array>,
  nodeName: string,
  nowMs: number,
): Promise<{ payload: TokenPayload; signer: string }> {
  if (bytes.length > TOKEN_MAX_BYTES * 2) throw tokenError(`too large (${bytes.length} bytes)`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw tokenError(`not JSON: ${(e as Error).message}`);
  }
  const file = TokenFileSchema.safeParse(json);
  if (!file.success) {
    throw tokenError(
      `not a ${TOKEN_FORMAT} token: ${
        file.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")
      }`,
    );
  }
  const signerRaw = fromHex(file.data.signer_key);
  const signer = await fingerprint(signerRaw);
  if (!trustedKeys.has(signer)) {
    throw tokenError(`signed by key ${signer.slice(0, 16)}, which is not a trusted key`);
  }
  let payloadBytes: Uint8Array<ArrayBuffer>;
  try {
    payloadBytes = decodeBase64(file.data.payload);
  } catch {
    throw tokenError("payload is not base64");
  }
  const msg = new Uint8Array([...new TextEncoder().encode(TOKEN_SIGNING_PREFIX), ...payloadBytes]);
  let good = false;
  try {
    const key = await importPublicKey(signerRaw);
    good = await crypto.subtle.verify("Ed25519", key, fromHex(file.data.signature), msg);
  } catch {
    good = false;
  }
  if (!good) throw tokenError("the signature does not verify (tampered or wrong key)");
  let payloadJson: unknown;
  try {
    payloadJson = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payloadBytes));
  } catch (e) {
    throw tokenError(`payload is not JSON: ${(e as Error).message}`);
  }
  const p = TokenPayloadSchema.safeParse(payloadJson);
  if (!p.success) {
    throw tokenError(
      `payload malformed: ${
        p.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")
      }`,
    );
  }
  const { node, not_before, expires_at } = p.data;
  if (node !== nodeName) throw tokenError(`issued for node "${node}", this node is "${nodeName}"`);
  if (expires_at <= not_before) throw tokenError("expires_at is not after not_before");
  if (expires_at - not_before > TOKEN_MAX_SECONDS) {
    throw tokenError(
      `valid for ${expires_at - not_before} s; the limit is ${TOKEN_MAX_SECONDS} s (24 h)`,
    );
  }
  const now = Math.floor(nowMs / 1000);
  if (now < not_before) {
    throw tokenError(`not valid before ${new Date(not_before * 1000).toISOString()}`);
  }
  if (now >= expires_at) {
    throw tokenError(`expired at ${new Date(expires_at * 1000).toISOString()}`);
  }
  return { payload: p.data, signer };
}

/** Make a token (text of the file) signed with `secret` (an Ed25519 private CryptoKey). */
export async function mintToken(
  secret: CryptoKey,
  payload: TokenPayload,
): Promise<string> {
  const checked = TokenPayloadSchema.safeParse(payload);
  if (!checked.success) {
    throw new UsageError(
      `Invalid break-glass token: ${checked.error.issues.map((i) => i.message).join("; ")}`,
    );
  }
  if (payload.expires_at - payload.not_before > TOKEN_MAX_SECONDS) {
    throw new UsageError(`A break-glass token may be valid for at most 24 hours.`);
  }
  if (payload.expires_at <= payload.not_before) {
    throw new UsageError(`A break-glass token must expire after it becomes valid.`);
  }
  const payloadBytes = new TextEncoder().encode(JSON.stringify(checked.data));
  const msg = new Uint8Array([...new TextEncoder().encode(TOKEN_SIGNING_PREFIX), ...payloadBytes]);
  const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", secret, msg));
  const pub = await publicKeyFromSecret(secret);
  return JSON.stringify({
    format: TOKEN_FORMAT,
    payload: encodeBase64(payloadBytes),
    signer_key: toHex(pub),
    signature: toHex(sig),
  }) + "\n";
}

/** The standard marker and token locations for the daemon: /etc/aegisbpf and /var/lib/aegisbpf. */
export function breakGlassPaths(
  paths: { etcDir: string; stateDir: string },
): { markerPaths: string[]; tokenPath: string } {
  return {
    markerPaths: [
      `${paths.etcDir}/${BREAK_GLASS_MARKER}`,
      `${paths.stateDir}/${BREAK_GLASS_MARKER}`,
    ],
    tokenPath: `${paths.etcDir}/${BREAK_GLASS_TOKEN_FILE}`,
  };
}
