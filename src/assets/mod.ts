/**
 * The embedded native artifacts: the BPF object and the libbpf shim.
 *
 * Both are decoded from dist/gen/embedded_bytes.ts (generated at build
 * time, loaded on first use; dist/gen/embedded.ts holds versions and hashes) and
 * their SHA-256 is checked against the value recorded at build time before
 * any use. The shim is written to a root-only directory (0700) under the
 * runtime dir (/run/aegisbpf by default, AEGIS_RUNTIME_DIR to override)
 * and dlopened from there; an existing file is reused only if its hash
 * matches.
 *
 * @module
 */
import { aegisPaths } from "../contracts.ts";
import { AbiMismatchError, AegisError } from "../errors.ts";
import { ABI_FINGERPRINT } from "../bpf/abi_gen.ts";
import { Shim } from "../native/mod.ts";
import { decodeBase64, sha256Hex } from "../util/bytes.ts";
import { BPF_OBJECT, BUILD, SHIM } from "../../dist/gen/embedded.ts";

/** The embedded bytes (base64), a module of ~1 MB loaded on first use. */
function embeddedBytes(): Promise<typeof import("../../dist/gen/embedded_bytes.ts")> {
  return import("../../dist/gen/embedded_bytes.ts");
}

export { BUILD };

/** Recorded SHA-256 of the embedded artifacts. */
export const EMBEDDED = {
  shim: { file: SHIM.file, sha256: SHIM.sha256, buildId: SHIM.buildId },
  bpfObject: { file: BPF_OBJECT.file, sha256: BPF_OBJECT.sha256 },
} as const;

/** Default runtime directory (tmpfs, root only). */
export function runtimeDir(): string {
  return aegisPaths().runtimeDir;
}

async function verified(
  what: string,
  b64: Promise<string>,
  sha256: string,
): Promise<Uint8Array<ArrayBuffer>> {
  const bytes = decodeBase64(await b64);
  const got = await sha256Hex(bytes);
  if (got !== sha256) {
    throw new AbiMismatchError(
      `The embedded ${what} is corrupt: SHA-256 ${got}, the build recorded ${sha256}. Reinstall aegisbpf.`,
    );
  }
  return bytes;
}

/** The embedded BPF object, hash-checked. */
export function bpfObjectBytes(): Promise<Uint8Array<ArrayBuffer>> {
  if (BUILD.abiFingerprint !== ABI_FINGERPRINT) {
    throw new AbiMismatchError(
      `The embedded BPF object was built for ABI ${
        BUILD.abiFingerprint.slice(0, 12)
      }, the codecs are ABI ${ABI_FINGERPRINT.slice(0, 12)}. Rebuild with "deno task build".`,
    );
  }
  return verified(
    "BPF object",
    embeddedBytes().then((m) => m.BPF_OBJECT_BASE64),
    BPF_OBJECT.sha256,
  );
}

/**
 * The embedded BPF object as `health` reports it (docs/posture.md): whether
 * its bytes are there, and whether their SHA-256 is the one the build
 * recorded. Never throws; the bytes are returned only when verified.
 */
export async function checkBpfObject(): Promise<
  { found: boolean; hashVerified: boolean; bytes: Uint8Array<ArrayBuffer> | null }
> {
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = decodeBase64((await embeddedBytes()).BPF_OBJECT_BASE64);
  } catch {
    return { found: false, hashVerified: false, bytes: null };
  }
  if (bytes.byteLength === 0) return { found: false, hashVerified: false, bytes: null };
  const ok = (await sha256Hex(bytes)) === BPF_OBJECT.sha256;
  return { found: true, hashVerified: ok, bytes: ok ? bytes : null };
}

/**
 * Create `dir` (mode 0700) or check that an existing one is safe to use. An
 * existing directory of ours that nobody else could write (no group/other
 * write bit: a 0755 one, as Kubernetes creates a hostPath directory) is
 * tightened to 0700; one others could have written into is refused.
 */
async function ensurePrivateDir(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  let st = await Deno.lstat(dir);
  const uid = Deno.uid();
  if (!st.isDirectory) throw new AegisError("UNSAFE_PATH", `"${dir}" is not a directory`);
  if (st.uid === uid && ((st.mode ?? 0) & 0o077) !== 0 && ((st.mode ?? 0) & 0o022) === 0) {
    await Deno.chmod(dir, 0o700);
    st = await Deno.lstat(dir);
  }
  if (st.uid !== uid || ((st.mode ?? 0) & 0o077) !== 0) {
    throw new AegisError(
      "UNSAFE_PATH",
      `"${dir}" must be owned by uid ${uid} with mode 0700 (it is uid ${st.uid}, mode ${
        ((st.mode ?? 0) & 0o777).toString(8)
      }); remove it or fix its permissions`,
    );
  }
}

/**
 * Write the embedded shim into `<runtimeDir>/lib/` (unless an identical
 * copy is there) and return its path.
 */
export async function extractShim(dir = runtimeDir()): Promise<string> {
  await ensurePrivateDir(dir);
  const lib = `${dir}/lib`;
  await ensurePrivateDir(lib);
  const path = `${lib}/libaegis_shim-${SHIM.sha256.slice(0, 16)}.so`;
  // A copy with the recorded hash is the embedded shim: use it without
  // loading the embedded bytes (a 1 MB module: most of a short command's time)
  try {
    if ((await sha256Hex(await Deno.readFile(path))) === SHIM.sha256) return path;
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const bytes = await verified(
    "libbpf shim",
    embeddedBytes().then((m) => m.SHIM_BASE64),
    SHIM.sha256,
  );
  // Older versions' copies are removed (a process still using one keeps
  // its mapping; unlinking does not disturb it).
  for await (const e of Deno.readDir(lib)) {
    if (e.name.startsWith("libaegis_shim-") && `${lib}/${e.name}` !== path) {
      await Deno.remove(`${lib}/${e.name}`).catch(() => {});
    }
  }
  const tmp = `${path}.${Deno.pid}.tmp`;
  await Deno.writeFile(tmp, bytes, { mode: 0o500, createNew: true });
  await Deno.rename(tmp, path);
  return path;
}

/** Extract, dlopen and check the embedded shim. */
export async function openEmbeddedShim(dir = runtimeDir()): Promise<Shim> {
  const path = await extractShim(dir);
  const shim = Shim.open(path);
  const loaded = shim.loadedPath();
  if (loaded !== path) {
    shim.close();
    throw new AbiMismatchError(
      `The dynamic loader mapped the shim from "${loaded}", not from "${path}"`,
    );
  }
  if (shim.buildId() !== SHIM.buildId) {
    shim.close();
    throw new AbiMismatchError(
      `The loaded shim "${path}" has build id ${shim.buildId()}, the embedded one ${SHIM.buildId}`,
    );
  }
  return shim;
}
