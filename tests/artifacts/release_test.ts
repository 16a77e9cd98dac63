/**
 * Tier 1 (artifacts): the release tooling of build/release.ts. The SBOM is
 * generated from the real deno.lock and build/native-sources.env; sums and
 * signatures round-trip with a key in our format (src/policy/keys.ts), and
 * tampering is reported.
 */
import { deepStrictEqual, match, ok, rejects, strictEqual } from "node:assert/strict";
import {
  buildSbom,
  integrityHash,
  type SbomInputs,
  sha256Sums,
  signSums,
  splitLockKey,
  verifyRelease,
} from "../../build/release.ts";
import { keygen } from "../../src/policy/keys.ts";
import { ROOT } from "../lib/helpers.ts";

function realInputs(): SbomInputs {
  return {
    lockText: Deno.readTextFileSync(`${ROOT}/deno.lock`),
    nativeEnvText: Deno.readTextFileSync(`${ROOT}/build/native-sources.env`),
    denoVersion: Deno.readTextFileSync(`${ROOT}/build/deno-version.txt`).trim(),
    appVersion: JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`)).version,
  };
}

Deno.test("SBOM from the real deno.lock: CycloneDX 1.5, every locked package with its integrity", async () => {
  const inp = realInputs();
  const sbom = JSON.parse(JSON.stringify(await buildSbom(inp)));
  strictEqual(sbom.bomFormat, "CycloneDX");
  strictEqual(sbom.specVersion, "1.5");
  match(
    sbom.serialNumber,
    /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
  );
  const lock = JSON.parse(inp.lockText);
  const npmKeys = Object.keys(lock.npm);
  ok(npmKeys.length >= 5, `only ${npmKeys.length} npm entries in deno.lock`);
  for (const key of npmKeys) {
    const { name, version } = splitLockKey(key);
    const c = sbom.components.find((c: { purl?: string }) =>
      c.purl === `pkg:npm/${name.replace(/^@/, "%40")}@${version}`
    );
    ok(c, `${key} missing from the SBOM`);
    strictEqual(c.version, version);
    strictEqual(c.group ? `${c.group}/${c.name}` : c.name, name);
    deepStrictEqual(c.hashes, [integrityHash(lock.npm[key].integrity)]);
    strictEqual(c.hashes[0].alg, "SHA-512");
    match(c.hashes[0].content, /^[0-9a-f]{128}$/);
  }
  const env = inp.nativeEnvText;
  for (const pkg of ["libbpf", "elfutils"]) {
    const c = sbom.components.find((c: { name: string }) => c.name === pkg);
    ok(c, `${pkg} missing`);
    ok(env.includes(`=${c.version}\n`), `${pkg} ${c.version} is not the pinned version`);
    match(c.purl, /^pkg:deb\/debian\//);
  }
  const denort = sbom.components.find((c: { name: string }) => c.name === "denort");
  strictEqual(denort.version, inp.denoVersion);
  // refs: unique, and every dependency edge names a known component
  const refs = sbom.components.map((c: { "bom-ref": string }) => c["bom-ref"]);
  strictEqual(new Set(refs).size, refs.length, "duplicate bom-ref");
  const known = new Set([...refs, sbom.metadata.component["bom-ref"]]);
  for (const d of sbom.dependencies) {
    ok(known.has(d.ref), d.ref);
    for (const on of d.dependsOn) ok(known.has(on), `${d.ref} -> ${on}`);
  }
  // one commit, one SBOM
  deepStrictEqual(await buildSbom(inp), await buildSbom(inp));
});

Deno.test("SBOM generation refuses a lock it cannot read, naming the problem", async () => {
  const inp = realInputs();
  await rejects(buildSbom({ ...inp, lockText: '{"version":"3"}' }), /lockfile version "5"/);
  const lock = JSON.parse(inp.lockText);
  lock.npm["hono@4.13.19"].dependencies = ["left-pad"];
  await rejects(buildSbom({ ...inp, lockText: JSON.stringify(lock) }), /left-pad.*not locked/);
  await rejects(buildSbom({ ...inp, nativeEnvText: "" }), /native-sources\.env/);
  lock.npm["hono@4.13.19"] = { integrity: "md5-AAAA" };
  await rejects(buildSbom({ ...inp, lockText: JSON.stringify(lock) }), /unknown integrity/);
});

Deno.test("SHA256SUMS signed with our key format verifies; tampering is reported", async () => {
  const dir = await Deno.makeTempDir({ prefix: "aegis-release-" });
  try {
    const rel = `${dir}/release`;
    await Deno.mkdir(rel);
    await Deno.writeTextFile(`${rel}/aegisbpf`, "binary bytes");
    await Deno.writeTextFile(`${rel}/sbom.cdx.json`, "{}\n");
    const sums = await sha256Sums(rel);
    strictEqual(sums.split("\n").filter(Boolean).length, 2);
    await Deno.writeTextFile(`${rel}/SHA256SUMS`, sums);
    const k = await keygen(`${dir}/signer`);
    strictEqual(await signSums(rel, k.keyPath), k.fingerprint);
    match(await Deno.readTextFile(`${rel}/SHA256SUMS.sig`), /^[0-9a-f]{128}\n$/);
    deepStrictEqual(await verifyRelease(rel, k.pubPath), []);
    // another key does not verify it
    const other = await keygen(`${dir}/other`);
    match((await verifyRelease(rel, other.pubPath)).join("\n"), /does not verify/);
    // a changed file is named
    await Deno.writeTextFile(`${rel}/aegisbpf`, "binary bytes!");
    deepStrictEqual(await verifyRelease(rel, k.pubPath), [
      "aegisbpf: SHA-256 differs from SHA256SUMS",
    ]);
    // a changed SHA256SUMS breaks the signature
    await Deno.writeTextFile(`${rel}/SHA256SUMS`, await sha256Sums(rel));
    match((await verifyRelease(rel, k.pubPath)).join("\n"), /does not verify/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
