/**
 * Ed25519 signing keys for policy bundles (docs/signing.md), WebCrypto only.
 *
 * Files:
 * - `PREFIX.key`: the secret key, the PKCS#8 DER encoding (48 bytes) as 96
 *   lower-case hex characters and a newline; mode 0600, created with
 *   `createNew` so an existing key is never overwritten. PKCS#8 was chosen
 *   over the raw 32-byte seed because a 64-hex seed would look exactly like a
 *   public key file, and a secret installed by mistake into the trusted-key
 *   folder would be world-readable; 96 hex cannot be mistaken for a `.pub`
 *   (and {@link parsePublicKeyText} refuses it by name). OpenSSL reads it:
 *   `xxd -r -p PREFIX.key | openssl pkey -inform DER`.
 * - `PREFIX.pub` / trusted `*.pub`: the raw 32-byte public key as 64 hex
 *   characters and an optional newline.
 * - Fingerprint: SHA-256 hex of the raw 32-byte public key; trusted keys are
 *   installed as `<first 16 hex of the fingerprint>.pub`.
 *
 * Secret material never appears in an error message, a warning or a log
 * record: errors name the file and the reason only.
 *
 * @module
 */
import { aegisPaths, DEFAULT_KEYS_DIR } from "../contracts.ts";
import { AegisError, UsageError } from "../errors.ts";
import { fromHex, sha256Hex, toHex } from "../util/bytes.ts";
import { writeFileAtomic } from "./atomic.ts";
import { FileReadError, readTextFileCapped } from "../util/read_file.ts";

/** Where trusted public keys live (docs/signing.md). */

/** Trusted key folder (AEGIS_KEYS_DIR overrides, for tests). */
export function keysDir(): string {
  return aegisPaths().keysDir;
}

/** Largest key file read (a .pub is 65 bytes, a .key 97). */
const MAX_KEY_FILE = 4096;

/** PKCS#8 prefix of an Ed25519 private key (RFC 8410); the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = "302e020100300506032b657004220420";

const HEX64 = /^[0-9a-f]{64}$/;
const HEX96 = /^[0-9a-f]{96}$/;

/** A freshly generated key pair: secret as PKCS#8 DER, public as 32 raw bytes. */
export interface KeyPairBytes {
  secretPkcs8: Uint8Array<ArrayBuffer>;
  publicRaw: Uint8Array<ArrayBuffer>;
}

/** Generate an Ed25519 key pair in memory. */
export async function generateKeyPair(): Promise<KeyPairBytes> {
  const kp = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  return {
    secretPkcs8: new Uint8Array(await crypto.subtle.exportKey("pkcs8", kp.privateKey)),
    publicRaw: new Uint8Array(await crypto.subtle.exportKey("raw", kp.publicKey)),
  };
}

/** SHA-256 hex of the raw 32-byte public key (given as bytes or 64 hex). */
export async function fingerprint(pub: Uint8Array | string): Promise<string> {
  const raw = typeof pub === "string" ? parsePublicKeyText(pub, "public key") : pub;
  if (raw.length !== 32) {
    throw new UsageError(`An Ed25519 public key is 32 bytes, got ${raw.length}.`);
  }
  return await sha256Hex(new Uint8Array(raw));
}

/**
 * Parse the text of a public key file: exactly 64 hex characters and an
 * optional final newline. `name` (a file name) is used in error messages; the
 * content is never echoed (it could be a secret key put in the wrong place).
 */
export function parsePublicKeyText(text: string, name: string): Uint8Array<ArrayBuffer> {
  const t = text.endsWith("\n") ? text.slice(0, -1) : text;
  const lower = t.toLowerCase();
  if (HEX96.test(lower) && lower.startsWith(PKCS8_ED25519_PREFIX)) {
    throw new UsageError(
      `"${name}" looks like a SECRET key (aegisbpf .key file), not a public key. ` +
        `Use the matching .pub file; never copy a .key file into the trusted-key folder.`,
    );
  }
  if (!HEX64.test(lower)) {
    throw new UsageError(
      `"${name}" is not an Ed25519 public key: expected exactly 64 hex characters and an ` +
        `optional newline, got ${text.length} characters.`,
    );
  }
  return fromHex(lower);
}

/** Import a raw 32-byte public key for `verify`. */
export async function importPublicKey(raw: Uint8Array): Promise<CryptoKey> {
  return await crypto.subtle.importKey(
    "raw",
    new Uint8Array(raw),
    { name: "Ed25519" },
    true,
    ["verify"],
  );
}

/** Import a secret key from PKCS#8 DER (extractable, so its public key can be derived). */
export async function importSecretKey(pkcs8: Uint8Array): Promise<CryptoKey> {
  if (pkcs8.length !== 48 || toHex(pkcs8.subarray(0, 16)) !== PKCS8_ED25519_PREFIX) {
    throw new UsageError("The secret key is not an Ed25519 PKCS#8 key (48 bytes).");
  }
  try {
    return await crypto.subtle.importKey(
      "pkcs8",
      new Uint8Array(pkcs8),
      { name: "Ed25519" },
      true,
      [
        "sign",
      ],
    );
  } catch {
    // No cause: the underlying error could describe the key bytes.
    throw new UsageError("The secret key could not be imported as an Ed25519 key.");
  }
}

/** The raw 32-byte public key of an extractable Ed25519 private CryptoKey. */
export async function publicKeyFromSecret(secret: CryptoKey): Promise<Uint8Array<ArrayBuffer>> {
  const jwk = await crypto.subtle.exportKey("jwk", secret);
  if (typeof jwk.x !== "string") {
    throw new UsageError("Cannot derive the public key: the secret key has no public part.");
  }
  const b64 = jwk.x.replace(/-/g, "+").replace(/_/g, "/");
  const s = atob(b64 + "=".repeat((4 - b64.length % 4) % 4));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** A key file: a regular file of at most {@link MAX_KEY_FILE} bytes (util/read_file.ts). */
function readSmallFile(path: string, what: string): string {
  return readTextFileCapped(path, { maxBytes: MAX_KEY_FILE, what });
}

/**
 * Read a `PREFIX.key` file. Refused when group or other can read or write it
 * (like ssh does), so a leaked-permission key is noticed before it is used.
 */
export async function readSecretKeyFile(path: string): Promise<CryptoKey> {
  const text = readSmallFile(path, "secret key file");
  const t = (text.endsWith("\n") ? text.slice(0, -1) : text).toLowerCase();
  if (!HEX96.test(t)) {
    throw new UsageError(
      `"${path}" is not an aegisbpf secret key file (expected 96 hex characters: ` +
        `Ed25519 PKCS#8). If it is a .pub file, use the matching .key file.`,
    );
  }
  const mode = Deno.statSync(path).mode;
  if (mode !== null && (mode & 0o077) !== 0) {
    throw new UsageError(
      `Secret key file "${path}" is accessible by group or others (mode ` +
        `${(mode & 0o777).toString(8).padStart(4, "0")}); run: chmod 600 ${path}`,
    );
  }
  return await importSecretKey(fromHex(t));
}

/** Paths and fingerprint written by {@link keygen}. */
export interface KeygenResult {
  keyPath: string;
  pubPath: string;
  fingerprint: string;
}

/**
 * Write a new key pair to `PREFIX.key` (secret, 0600) and `PREFIX.pub`
 * (public, 0644). Neither file is ever overwritten: if one exists, nothing
 * is written and a `KEY_EXISTS` error names it.
 */
export async function keygen(prefix: string): Promise<KeygenResult> {
  if (prefix === "" || prefix.endsWith("/")) {
    throw new UsageError(`Key prefix "${prefix}" must name a file, e.g. /root/aegis-signing.`);
  }
  const keyPath = `${prefix}.key`;
  const pubPath = `${prefix}.pub`;
  for (const p of [keyPath, pubPath]) {
    let exists = false;
    try {
      Deno.lstatSync(p);
      exists = true;
    } catch { /* absent: fine */ }
    if (exists) {
      throw new AegisError(
        "KEY_EXISTS",
        `"${p}" already exists; refusing to overwrite a key. Choose another prefix or ` +
          `move the old key away deliberately.`,
      );
    }
  }
  const kp = await generateKeyPair();
  const enc = new TextEncoder();
  const writeNew = (path: string, text: string, mode: number) => {
    const f = Deno.openSync(path, { write: true, createNew: true, mode });
    try {
      Deno.chmodSync(path, mode);
      const b = enc.encode(text);
      let off = 0;
      while (off < b.length) off += f.writeSync(b.subarray(off));
      f.syncSync();
    } finally {
      f.close();
    }
  };
  try {
    writeNew(keyPath, toHex(kp.secretPkcs8) + "\n", 0o600);
  } catch (e) {
    const exists = e instanceof Deno.errors.AlreadyExists;
    throw new AegisError(
      exists ? "KEY_EXISTS" : "KEYGEN_FAILED",
      exists
        ? `"${keyPath}" already exists; refusing to overwrite a key.`
        : `Cannot create "${keyPath}": ${(e as Error).message}`,
    );
  } finally {
    kp.secretPkcs8.fill(0);
  }
  const pubHex = toHex(kp.publicRaw);
  try {
    writeNew(pubPath, pubHex + "\n", 0o644);
  } catch (e) {
    Deno.removeSync(keyPath); // we created it just now: do not leave half a pair
    throw new AegisError(
      e instanceof Deno.errors.AlreadyExists ? "KEY_EXISTS" : "KEYGEN_FAILED",
      `Cannot create "${pubPath}": ${(e as Error).message}`,
    );
  }
  return { keyPath, pubPath, fingerprint: await fingerprint(kp.publicRaw) };
}

/** Trusted keys by full fingerprint, and why any file was skipped. */
export interface TrustedKeys {
  keys: Map<string, Uint8Array>;
  warnings: string[];
}

/** Options of {@link loadTrustedKeys}. */
export interface LoadKeysOptions {
  /** Owner uid required of the folder and of each key file (default 0: root). */
  ownerUid?: number;
}

function modeStr(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/**
 * Load `DIR/*.pub`. A file is skipped, with a warning naming it and the
 * reason, when it is not a regular file (symlinks are not followed), is not
 * owned by root, is group- or other-writable, or is not 64 hex characters.
 * If the folder itself is not owned by root or is group/other-writable, no
 * key is trusted (anyone able to add a file there could add a key).
 * A missing folder gives no keys and a warning.
 */
export async function loadTrustedKeys(
  dir: string = DEFAULT_KEYS_DIR,
  opts: LoadKeysOptions = {},
): Promise<TrustedKeys> {
  const owner = opts.ownerUid ?? 0;
  const keys = new Map<string, Uint8Array>();
  const warnings: string[] = [];
  let dst: Deno.FileInfo;
  try {
    dst = Deno.statSync(dir);
  } catch (e) {
    warnings.push(`trusted key folder "${dir}": ${(e as Error).message}; no key is trusted`);
    return { keys, warnings };
  }
  if (!dst.isDirectory) {
    warnings.push(`trusted key folder "${dir}" is not a directory; no key is trusted`);
    return { keys, warnings };
  }
  if (dst.uid !== owner || (dst.mode !== null && (dst.mode & 0o022) !== 0)) {
    warnings.push(
      `trusted key folder "${dir}" is owned by uid ${dst.uid} with mode ${modeStr(dst.mode ?? 0)}` +
        `; it must be owned by uid ${owner} and not group/other-writable; no key is trusted`,
    );
    return { keys, warnings };
  }
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".pub"))
    .sort();
  for (const name of names) {
    const path = `${dir}/${name}`;
    let st: Deno.FileInfo;
    try {
      st = Deno.lstatSync(path);
    } catch (e) {
      warnings.push(`skipped "${path}": ${(e as Error).message}`);
      continue;
    }
    if (st.isSymlink) {
      warnings.push(`skipped "${path}": a symbolic link (install the key file itself)`);
      continue;
    }
    if (!st.isFile) {
      warnings.push(`skipped "${path}": not a regular file`);
      continue;
    }
    if (st.uid !== owner) {
      warnings.push(`skipped "${path}": owned by uid ${st.uid}, not ${owner}`);
      continue;
    }
    if (st.mode !== null && (st.mode & 0o022) !== 0) {
      warnings.push(
        `skipped "${path}": group- or other-writable (mode ${modeStr(st.mode)}); chmod 644 it`,
      );
      continue;
    }
    if (st.size > MAX_KEY_FILE) {
      warnings.push(`skipped "${path}": too large (${st.size} bytes) for a key file`);
      continue;
    }
    try {
      const raw = parsePublicKeyText(readSmallFile(path, "trusted key file"), path);
      await importPublicKey(raw); // a valid curve point
      keys.set(await fingerprint(raw), raw);
    } catch (e) {
      warnings.push(`skipped "${path}": ${(e as Error).message}`);
    }
  }
  return { keys, warnings };
}

/** What {@link addKey} installed. */
export interface AddKeyResult {
  path: string;
  fingerprint: string;
  /** false when the same key was already installed under that name. */
  added: boolean;
}

/**
 * Install a public key file into the trusted folder as
 * `<fingerprint16>.pub` (mode 0644, written atomically). The input is
 * validated first (64 hex, a valid Ed25519 point; a secret key is refused).
 * Installing the same key again is a no-op.
 */
export async function addKey(
  pubFile: string,
  dir: string = DEFAULT_KEYS_DIR,
): Promise<AddKeyResult> {
  const raw = parsePublicKeyText(readSmallFile(pubFile, "public key file"), pubFile);
  try {
    await importPublicKey(raw);
  } catch {
    throw new UsageError(`"${pubFile}" is 64 hex characters but not a valid Ed25519 public key.`);
  }
  const fp = await fingerprint(raw);
  const path = `${dir}/${fp.slice(0, 16)}.pub`;
  const content = toHex(raw) + "\n";
  let old: string | undefined;
  try {
    old = readSmallFile(path, "installed key file");
  } catch (e) {
    const missing = e instanceof FileReadError && e.cause instanceof Deno.errors.NotFound;
    if (!missing) throw e;
  }
  if (old === content) return { path, fingerprint: fp, added: false };
  if (old !== undefined) {
    throw new AegisError(
      "KEY_EXISTS",
      `"${path}" exists with different content; remove it first if it should be replaced.`,
    );
  }
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  writeFileAtomic(path, new TextEncoder().encode(content), 0o644);
  return { path, fingerprint: fp, added: true };
}
