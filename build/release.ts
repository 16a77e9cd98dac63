/**
 * Release artifacts (docs/build.md "Release"), used by build/release.sh:
 *
 *   deno run -A build/release.ts sbom OUT.json       CycloneDX 1.5 SBOM
 *   deno run -A build/release.ts sums DIR            DIR/SHA256SUMS of DIR's files
 *   deno run -A build/release.ts sign DIR KEYFILE    DIR/SHA256SUMS.sig (Ed25519)
 *   deno run -A build/release.ts verify DIR PUBFILE  check SHA256SUMS.sig and every sum
 *
 * The SBOM lists every package of deno.lock (npm and jsr, with version and
 * integrity), the Deno runtime of build/deno-version.txt and the Debian source
 * packages of build/native-sources.env (libbpf, elfutils) that are linked into
 * the shim. It has no timestamp and a serial number derived from its content,
 * so one commit gives one SBOM. Keys are the formats of src/policy/keys.ts: a
 * PREFIX.key (Ed25519 PKCS#8 hex, mode 0600) signs, a .pub (32-byte hex)
 * verifies. SHA256SUMS.sig is the signature as 128 hex characters and a newline.
 *
 * @module
 */
import {
  fingerprint,
  importPublicKey,
  parsePublicKeyText,
  publicKeyFromSecret,
  readSecretKeyFile,
} from "../src/policy/keys.ts";
import { fromHex, sha256Hex, toHex } from "../src/util/bytes.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

export interface CdxComponent {
  type: "library" | "application" | "framework";
  "bom-ref": string;
  name: string;
  group?: string;
  version: string;
  purl?: string;
  description?: string;
  hashes?: { alg: string; content: string }[];
  licenses?: { license: { id: string } }[];
  externalReferences?: { type: string; url: string }[];
}

export interface Sbom {
  bomFormat: "CycloneDX";
  specVersion: "1.5";
  serialNumber: string;
  version: 1;
  metadata: { component: CdxComponent; tools: { components: CdxComponent[] } };
  components: CdxComponent[];
  dependencies: { ref: string; dependsOn: string[] }[];
}

/** `KEY=value` lines of a shell env file (quotes stripped; comments ignored). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const line of text.split("\n")) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (!m) continue;
    out[m[1]] = m[2].replace(/^"(.*)"$/, "$1").replace(/^'(.*)'$/, "$1");
  }
  return out;
}

/** Split a lock key "name@version[_peer@v…]" (name may be "@scope/name"). */
export function splitLockKey(key: string): { name: string; version: string } {
  const at = key.indexOf("@", 1);
  if (at <= 0) throw new Error(`deno.lock: cannot read package key "${key}"`);
  return { name: key.slice(0, at), version: key.slice(at + 1).split("_")[0] };
}

function purlNpm(name: string, version: string): string {
  return `pkg:npm/${name.startsWith("@") ? "%40" + name.slice(1) : name}@${
    encodeURIComponent(version)
  }`;
}

/** "sha512-<base64>" -> CycloneDX hash (hex). */
export function integrityHash(integrity: string): { alg: string; content: string } {
  const m = /^sha(256|384|512)-([A-Za-z0-9+/=]+)$/.exec(integrity);
  if (!m) throw new Error(`deno.lock: unknown integrity "${integrity.slice(0, 20)}…"`);
  const bin = atob(m[2]);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return { alg: `SHA-${m[1]}`, content: toHex(bytes) };
}

export interface SbomInputs {
  lockText: string;
  nativeEnvText: string;
  denoVersion: string;
  appVersion: string;
}

/** Build the SBOM from deno.lock and the native pins. */
export async function buildSbom(inp: SbomInputs): Promise<Sbom> {
  const lock = JSON.parse(inp.lockText);
  if (typeof lock !== "object" || lock === null || lock.version !== "5") {
    throw new Error(
      `deno.lock: expected lockfile version "5", got ${JSON.stringify(lock?.version)}`,
    );
  }
  const components: CdxComponent[] = [];
  const deps: { ref: string; dependsOn: string[] }[] = [];
  const npm: Record<string, { integrity?: string; dependencies?: string[] }> = lock.npm ?? {};
  const refOfNpmName = new Map<string, string>();
  for (const key of Object.keys(npm).sort()) {
    const { name, version } = splitLockKey(key);
    refOfNpmName.set(name, purlNpm(name, version));
  }
  for (const key of Object.keys(npm).sort()) {
    const { name, version } = splitLockKey(key);
    const entry = npm[key];
    const ref = purlNpm(name, version);
    const slash = name.startsWith("@") ? name.indexOf("/") : -1;
    components.push({
      type: "library",
      "bom-ref": ref,
      ...(slash > 0 ? { group: name.slice(0, slash), name: name.slice(slash + 1) } : { name }),
      version,
      purl: ref,
      ...(entry.integrity ? { hashes: [integrityHash(entry.integrity)] } : {}),
    });
    const on = (entry.dependencies ?? []).map((d) => {
      // "name" when one version is locked, the full key otherwise
      const r = d in npm
        ? purlNpm(splitLockKey(d).name, splitLockKey(d).version)
        : refOfNpmName.get(d);
      if (!r) throw new Error(`deno.lock: ${key} depends on "${d}", which is not locked`);
      return r;
    });
    deps.push({ ref, dependsOn: on });
  }
  const jsr: Record<string, { integrity?: string }> = lock.jsr ?? {};
  for (const key of Object.keys(jsr).sort()) {
    const { name, version } = splitLockKey(key);
    const ref = `pkg:generic/jsr/${name.replace(/^@/, "%40")}@${version}`;
    const integ = jsr[key].integrity;
    components.push({
      type: "library",
      "bom-ref": ref,
      name,
      version,
      purl: ref,
      ...(integ && /^[0-9a-f]{64}$/.test(integ)
        ? { hashes: [{ alg: "SHA-256", content: integ }] }
        : {}),
    });
    deps.push({ ref, dependsOn: [] });
  }
  const env = parseEnvFile(inp.nativeEnvText);
  const native: string[] = [];
  for (
    const [pkgVar, verVar, desc] of [
      ["LIBBPF_SRC_PKG", "LIBBPF_SRC_VERSION", "libbpf, linked statically into the shim"],
      [
        "ELFUTILS_SRC_PKG",
        "ELFUTILS_SRC_VERSION",
        "libelf (elfutils), linked statically into the shim",
      ],
    ] as const
  ) {
    const name = env[pkgVar];
    const version = env[verVar];
    if (!name || !version) {
      throw new Error(`build/native-sources.env: ${pkgVar} or ${verVar} is missing`);
    }
    const ref = `pkg:deb/debian/${name}@${
      encodeURIComponent(version)
    }?arch=source&distro=debian-12`;
    native.push(ref);
    components.push({
      type: "library",
      "bom-ref": ref,
      name,
      version,
      purl: ref,
      description: desc,
    });
  }
  const denoRef = `pkg:generic/denort@${inp.denoVersion}`;
  components.push({
    type: "application",
    "bom-ref": denoRef,
    name: "denort",
    version: inp.denoVersion,
    purl: denoRef,
    description: "the Deno runtime embedded by deno compile",
    licenses: [{ license: { id: "MIT" } }],
  });
  const appRef = `pkg:generic/aegisbpf@${inp.appVersion}`;
  const direct: string[] = [];
  for (const spec of lock.workspace?.dependencies ?? []) {
    if (typeof spec !== "string" || !spec.startsWith("npm:")) continue;
    const r = refOfNpmName.get(splitLockKey(spec.slice(4)).name);
    if (r) direct.push(r);
  }
  deps.unshift({ ref: appRef, dependsOn: [...direct, ...native, denoRef] });
  const body = { components, dependencies: deps };
  const h = await sha256Hex(JSON.stringify(body) + appRef);
  // A UUID (version 5 layout) from the content hash: same content, same serial.
  const serial = `urn:uuid:${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-` +
    `${((parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
  return {
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    serialNumber: serial,
    version: 1,
    metadata: {
      component: {
        type: "application",
        "bom-ref": appRef,
        name: "aegisbpf",
        version: inp.appVersion,
        purl: appRef,
        licenses: [{ license: { id: "Apache-2.0" } }],
      },
      tools: {
        components: [{
          type: "application",
          "bom-ref": "aegisbpf-build-release",
          name: "aegisbpf build/release.ts",
          version: inp.appVersion,
        }],
      },
    },
    components,
    dependencies: deps,
  };
}

/** `sha256  name` lines (sha256sum format) for the regular files of dir, sorted. */
export async function sha256Sums(dir: string): Promise<string> {
  const names: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    if (e.isFile && e.name !== "SHA256SUMS" && e.name !== "SHA256SUMS.sig") names.push(e.name);
  }
  names.sort();
  let text = "";
  for (const n of names) text += `${await sha256Hex(Deno.readFileSync(`${dir}/${n}`))}  ${n}\n`;
  return text;
}

export async function signSums(dir: string, keyFile: string): Promise<string> {
  const key = await readSecretKeyFile(keyFile);
  const sums = Deno.readFileSync(`${dir}/SHA256SUMS`);
  const sig = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, key, sums));
  Deno.writeTextFileSync(`${dir}/SHA256SUMS.sig`, toHex(sig) + "\n");
  return await fingerprint(await publicKeyFromSecret(key));
}

/** Check SHA256SUMS.sig with the .pub key and every line of SHA256SUMS; returns problems. */
export async function verifyRelease(dir: string, pubFile: string): Promise<string[]> {
  const problems: string[] = [];
  const pub = parsePublicKeyText(Deno.readTextFileSync(pubFile), pubFile);
  const sums = Deno.readFileSync(`${dir}/SHA256SUMS`);
  let sigText = "";
  try {
    sigText = Deno.readTextFileSync(`${dir}/SHA256SUMS.sig`).trim();
  } catch {
    problems.push("SHA256SUMS.sig is missing");
  }
  if (sigText !== "") {
    const ok = /^[0-9a-f]{128}$/.test(sigText) &&
      await crypto.subtle.verify(
        { name: "Ed25519" },
        await importPublicKey(pub),
        fromHex(sigText),
        sums,
      );
    if (!ok) problems.push(`SHA256SUMS.sig does not verify with ${pubFile}`);
  }
  for (const line of new TextDecoder().decode(sums).split("\n")) {
    if (line === "") continue;
    const m = /^([0-9a-f]{64}) {2}([A-Za-z0-9._+-]+)$/.exec(line);
    if (!m) {
      problems.push(`SHA256SUMS: unreadable line "${line.slice(0, 80)}"`);
      continue;
    }
    let have = "";
    try {
      have = await sha256Hex(Deno.readFileSync(`${dir}/${m[2]}`));
    } catch {
      problems.push(`${m[2]} is missing`);
      continue;
    }
    if (have !== m[1]) problems.push(`${m[2]}: SHA-256 differs from SHA256SUMS`);
  }
  return problems;
}

function say(s: string): void {
  Deno.stdout.writeSync(new TextEncoder().encode(`release: ${s}\n`));
}

async function main(args: string[]): Promise<number> {
  const [cmd, a, b] = args;
  if (cmd === "sbom" && a) {
    const sbom = await buildSbom({
      lockText: Deno.readTextFileSync(`${ROOT}/deno.lock`),
      nativeEnvText: Deno.readTextFileSync(`${ROOT}/build/native-sources.env`),
      denoVersion: Deno.readTextFileSync(`${ROOT}/build/deno-version.txt`).trim(),
      appVersion: JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`)).version,
    });
    Deno.writeTextFileSync(a, JSON.stringify(sbom, null, 2) + "\n");
    say(`wrote ${a} (${sbom.components.length} components)`);
    return 0;
  }
  if (cmd === "sums" && a) {
    Deno.writeTextFileSync(`${a}/SHA256SUMS`, await sha256Sums(a));
    say(`wrote ${a}/SHA256SUMS`);
    return 0;
  }
  if (cmd === "sign" && a && b) {
    const fp = await signSums(a, b);
    say(`wrote ${a}/SHA256SUMS.sig (key fingerprint ${fp})`);
    return 0;
  }
  if (cmd === "verify" && a && b) {
    const problems = await verifyRelease(a, b);
    for (const p of problems) say(`FAILED: ${p}`);
    if (problems.length === 0) say(`${a}: signature and every SHA-256 verified`);
    return problems.length === 0 ? 0 : 1;
  }
  Deno.stderr.writeSync(
    new TextEncoder().encode(
      "usage: release.ts sbom OUT | sums DIR | sign DIR KEYFILE | verify DIR PUBFILE\n",
    ),
  );
  return 2;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    Deno.stderr.writeSync(new TextEncoder().encode(`release: error: ${(e as Error).message}\n`));
    Deno.exit(1);
  }
}
