import assert from "node:assert/strict";
import {
  addKey,
  fingerprint,
  generateKeyPair,
  keygen,
  loadTrustedKeys,
  parsePublicKeyText,
  readSecretKeyFile,
} from "./keys.ts";
import { signBundle, verifyBundle } from "./bundle.ts";
import { toHex } from "../util/bytes.ts";

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-keys-" });
  try {
    await fn(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

/** uid owning files we create (root in CI). */
function myUid(dir: string): number {
  return Deno.statSync(dir).uid!;
}

Deno.test("keygen writes a 0600 secret and a 64-hex public key; they sign and verify", async () => {
  await withTmp(async (dir) => {
    const r = await keygen(`${dir}/signer`);
    assert.equal(r.keyPath, `${dir}/signer.key`);
    assert.equal(Deno.statSync(r.keyPath).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(r.pubPath).mode! & 0o777, 0o644);
    const pubText = Deno.readTextFileSync(r.pubPath);
    assert.match(pubText, /^[0-9a-f]{64}\n$/);
    assert.match(
      Deno.readTextFileSync(r.keyPath),
      /^302e020100300506032b657004220420[0-9a-f]{64}\n$/,
    );
    assert.equal(r.fingerprint, await fingerprint(pubText.trim()));

    const secret = await readSecretKeyFile(r.keyPath);
    const b = await signBundle(new TextEncoder().encode("version=1\n"), {
      secretKey: secret,
      policyVersion: 1,
      timestamp: 100,
      expires: 200,
    });
    const raw = parsePublicKeyText(pubText, r.pubPath);
    const v = await verifyBundle(b, {
      trustedKeys: new Map([[r.fingerprint, raw]]),
      now: 150,
      minVersionExclusive: 0,
    });
    assert.equal(v.ok, true, JSON.stringify(v));
  });
});

Deno.test("keygen never overwrites an existing key (nor its .pub)", async () => {
  await withTmp(async (dir) => {
    const r = await keygen(`${dir}/k`);
    const before = Deno.readTextFileSync(r.keyPath);
    await assert.rejects(keygen(`${dir}/k`), { code: "KEY_EXISTS" });
    assert.equal(Deno.readTextFileSync(r.keyPath), before);
    // Only the .pub exists: still refused, no .key created.
    Deno.writeTextFileSync(`${dir}/p.pub`, "x");
    await assert.rejects(keygen(`${dir}/p`), { code: "KEY_EXISTS" });
    assert.throws(() => Deno.statSync(`${dir}/p.key`), Deno.errors.NotFound);
  });
});

Deno.test("readSecretKeyFile refuses a group-readable key and never echoes its content", async () => {
  await withTmp(async (dir) => {
    const r = await keygen(`${dir}/k`);
    const secretHex = Deno.readTextFileSync(r.keyPath).trim();
    Deno.chmodSync(r.keyPath, 0o640);
    await assert.rejects(readSecretKeyFile(r.keyPath), (e: Error) => {
      assert.match(e.message, /chmod 600/);
      assert.ok(!e.message.includes(secretHex.slice(32)));
      return true;
    });
    // A .pub given as a secret key: clear error.
    await assert.rejects(readSecretKeyFile(r.pubPath), /not an aegisbpf secret key/);
  });
});

Deno.test("parsePublicKeyText: a secret key is refused by name, content never echoed", async () => {
  const kp = await generateKeyPair();
  const secretHex = toHex(kp.secretPkcs8);
  assert.throws(() => parsePublicKeyText(secretHex + "\n", "x.pub"), (e: Error) => {
    assert.match(e.message, /SECRET key/);
    assert.ok(!e.message.includes(secretHex.slice(32)));
    return true;
  });
  assert.throws(() => parsePublicKeyText("abc", "x.pub"), /64 hex/);
  assert.throws(() => parsePublicKeyText(toHex(kp.publicRaw) + "\n\n", "x.pub"), /64 hex/);
  assert.equal(parsePublicKeyText(toHex(kp.publicRaw), "x.pub").length, 32);
});

Deno.test("loadTrustedKeys: loads good keys, skips bad ones with a warning naming file and reason", async () => {
  await withTmp(async (dir) => {
    const uid = myUid(dir);
    const keysDir = `${dir}/keys`;
    Deno.mkdirSync(keysDir, { mode: 0o755 });
    Deno.chmodSync(keysDir, 0o755);
    const good = await keygen(`${dir}/good`);
    const added = await addKey(good.pubPath, keysDir);
    assert.equal(added.path, `${keysDir}/${good.fingerprint.slice(0, 16)}.pub`);
    assert.equal(added.added, true);
    assert.equal(Deno.statSync(added.path).mode! & 0o777, 0o644);
    assert.equal((await addKey(good.pubPath, keysDir)).added, false);

    const gw = await generateKeyPair();
    Deno.writeTextFileSync(`${keysDir}/groupw.pub`, toHex(gw.publicRaw) + "\n");
    Deno.chmodSync(`${keysDir}/groupw.pub`, 0o664);
    Deno.writeTextFileSync(`${keysDir}/junk.pub`, "not a key\n");
    Deno.chmodSync(`${keysDir}/junk.pub`, 0o644);
    Deno.writeTextFileSync(`${keysDir}/ignored.txt`, "whatever");
    Deno.symlinkSync(added.path, `${keysDir}/link.pub`);

    const { keys, warnings } = await loadTrustedKeys(keysDir, { ownerUid: uid });
    assert.deepEqual([...keys.keys()], [good.fingerprint]);
    const w = warnings.join("\n");
    assert.match(w, /groupw\.pub": group- or other-writable \(mode 0664\)/);
    assert.match(w, /junk\.pub": .*64 hex/);
    assert.match(w, /link\.pub": a symbolic link/);
    assert.ok(!w.includes("ignored.txt"));
    assert.equal(warnings.length, 3);
  });
});

Deno.test("loadTrustedKeys: a key file not owned by root (uid 65534) is skipped", async () => {
  await withTmp(async (dir) => {
    if (myUid(dir) !== 0) return; // chown needs root; CI runs as root
    Deno.chmodSync(dir, 0o755);
    const kp = await generateKeyPair();
    const p = `${dir}/nobody.pub`;
    Deno.writeTextFileSync(p, toHex(kp.publicRaw) + "\n");
    Deno.chmodSync(p, 0o644);
    Deno.chownSync(p, 65534, 65534);
    const { keys, warnings } = await loadTrustedKeys(dir);
    assert.equal(keys.size, 0);
    assert.match(warnings.join("\n"), /nobody\.pub": owned by uid 65534, not 0/);
  });
});

Deno.test("loadTrustedKeys: an unsafe or missing folder trusts nothing", async () => {
  await withTmp(async (dir) => {
    const uid = myUid(dir);
    const kp = await generateKeyPair();
    Deno.writeTextFileSync(`${dir}/a.pub`, toHex(kp.publicRaw));
    Deno.chmodSync(`${dir}/a.pub`, 0o644);
    Deno.chmodSync(dir, 0o777);
    let r = await loadTrustedKeys(dir, { ownerUid: uid });
    assert.equal(r.keys.size, 0);
    assert.match(r.warnings[0]!, /not group\/other-writable; no key is trusted/);
    Deno.chmodSync(dir, 0o755);
    r = await loadTrustedKeys(dir, { ownerUid: uid });
    assert.equal(r.keys.size, 1);
    r = await loadTrustedKeys(`${dir}/missing`, { ownerUid: uid });
    assert.equal(r.keys.size, 0);
    assert.match(r.warnings[0]!, /missing.*no key is trusted/);
  });
});

Deno.test("addKey refuses a secret key and garbage; nothing is installed", async () => {
  await withTmp(async (dir) => {
    const k = await keygen(`${dir}/k`);
    const keysDir = `${dir}/keys`;
    await assert.rejects(addKey(k.keyPath, keysDir), /SECRET key/);
    Deno.writeTextFileSync(`${dir}/bad.pub`, "zz\n");
    await assert.rejects(addKey(`${dir}/bad.pub`, keysDir), /64 hex/);
    await assert.rejects(addKey(`${dir}/none.pub`, keysDir), { code: "USAGE" });
    assert.throws(() => Deno.statSync(keysDir), Deno.errors.NotFound);
  });
});

Deno.test("key files are read bounded: /dev/zero, a directory, an oversized file are refused by name", async () => {
  await withTmp(async (dir) => {
    for (const p of ["/dev/zero", dir]) {
      await assert.rejects(readSecretKeyFile(p), (e: Error) => {
        assert.equal((e as { code?: string }).code, "USAGE");
        assert.match(
          e.message,
          new RegExp(`secret key file "${p}" is a (character device|directory)`),
        );
        return true;
      });
      await assert.rejects(addKey(p, `${dir}/keys`), /public key file .* is a /);
    }
    Deno.writeTextFileSync(`${dir}/big.pub`, "a".repeat(4097));
    await assert.rejects(
      addKey(`${dir}/big.pub`, `${dir}/keys`),
      /public key file ".*big\.pub" is 4097 bytes; the limit is 4096 bytes \(4 KiB\)/,
    );
    assert.throws(() => Deno.statSync(`${dir}/keys`), Deno.errors.NotFound);
  });
});
