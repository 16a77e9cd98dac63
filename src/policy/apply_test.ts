import { deepStrictEqual, match, ok, rejects, strictEqual, throws } from "node:assert/strict";
import {
  ABI_LAYOUT,
  AEGIS_CFG_GENERATION,
  AEGIS_CFG_HASH_EPOCH,
  AEGIS_POL_EXEC_ALLOWLIST,
  AEGIS_POL_EXEC_HASH,
  AEGIS_POL_EXEC_TRUSTED,
  AEGIS_POL_IMA_FAIL_CLOSED,
  AEGIS_POL_RUNTIME_DEPS,
  AEGIS_RT_INODE,
  AEGIS_RULE_ALLOW,
  AEGIS_RULE_DENY,
  AEGIS_RULE_TRUSTED,
} from "../bpf/abi_gen.ts";
import { hashKey, inodeKey, policyValue, ruleValue, u32Key } from "../bpf/rule_codec.ts";
import { applyCompiled, keyGeneration, MapFullError, RULE_MAPS } from "./generations.ts";
import { applyPolicyBytes, policyShow, restoreAppliedPolicy } from "./apply.ts";
import {
  bundleFileFor,
  isAppliedPolicy,
  parseAppliedPolicy,
  PolicyRejectedError,
} from "./store.ts";
import { type CompiledPolicy, compilePolicy } from "./compile.ts";
import { parsePolicy } from "./parse.ts";
import { DEFAULT_RULE_MAP_SIZES, mapSizesFor, readMapSizeRequests } from "./sizing.ts";
import { fakeApplyDeps, fakeMaps, fakeResolvePath } from "./fake_maps_testing.ts";
import type { ResolvedPath } from "../bpf/path_rule.ts";
import { LIVE_RULE_ID_BASE } from "./live.ts";
import { signBundle } from "./bundle.ts";
import { addKey, generateKeyPair, type KeyPairBytes } from "./keys.ts";
import { toHex } from "../util/bytes.ts";

Deno.test("every rule map's key struct has a generation field", () => {
  for (const [map, struct] of Object.entries(RULE_MAPS)) {
    const fields = (ABI_LAYOUT.structs[struct] as { fields: Record<string, unknown> }).fields;
    ok("gen" in fields, `${map}: ${struct} has no gen`);
  }
});

Deno.test("DEFAULT_RULE_MAP_SIZES is what bpf/include/aegis_maps.h declares", () => {
  const h = Deno.readTextFileSync(new URL("../../bpf/include/aegis_maps.h", import.meta.url));
  const found: Record<string, number> = {};
  for (const m of h.matchAll(/max_entries,\s*(\d+)\);[\s\S]*?\}\s*(aegis_\w+)\s+SEC/g)) {
    if (m[2] in RULE_MAPS) found[m[2]] = Number(m[1]);
  }
  deepStrictEqual(found, { ...DEFAULT_RULE_MAP_SIZES });
});

function inodes(n: number, gen0 = 0): CompiledPolicy {
  return {
    flags: 1,
    entries: Array.from({ length: n }, (_, i) => ({
      map: "aegis_deny_inode",
      key: (g: number) => inodeKey(1, gen0 + i + 1, g),
      value: ruleValue(i + 1, AEGIS_RULE_DENY, AEGIS_RT_INODE),
    })),
  };
}

Deno.test("mapSizesFor: two generations + 25 %, multiples of 4096, never below the default", () => {
  const s = mapSizesFor(inodes(65536), [{ map: "aegis_deny_cidr4" }]);
  strictEqual(s.aegis_deny_inode, 163840); // 2 * 65536 * 1.25
  strictEqual(s.aegis_deny_cidr4, DEFAULT_RULE_MAP_SIZES.aegis_deny_cidr4);
  strictEqual(s.aegis_deny_port, DEFAULT_RULE_MAP_SIZES.aegis_deny_port);
  strictEqual(mapSizesFor(inodes(30000), []).aegis_deny_inode, 77824);
  strictEqual(mapSizesFor(null, [], { aegis_deny_port: 5000 }).aegis_deny_port, 8192);
  deepStrictEqual(Object.keys(mapSizesFor(null, [])).sort(), Object.keys(RULE_MAPS).sort());
});

Deno.test("applyCompiled: switch, old generation removed, flags set", () => {
  const fm = fakeMaps();
  const r1 = applyCompiled(fm.maps, inodes(3));
  deepStrictEqual([r1.from, r1.to], [0, 1]);
  strictEqual(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION), 1n);
  const r2 = applyCompiled(fm.maps, inodes(2, 100));
  deepStrictEqual([r2.from, r2.to, r2.removed], [1, 0, 3]);
  const keys = fm.get("aegis_deny_inode").keys();
  strictEqual(keys.length, 2);
  ok(keys.every((k) => keyGeneration("aegis_deny_inode", k) === 0));
});

Deno.test("applyCompiled: every switch bumps the hash epoch (verified files of older policies miss)", () => {
  const fm = fakeMaps();
  const epoch = () => fm.get("aegis_config").sumU64(AEGIS_CFG_HASH_EPOCH);
  strictEqual(epoch(), 0n);
  applyCompiled(fm.maps, inodes(1));
  strictEqual(epoch(), 1n);
  // two applies bring the generation bit back to 1: the epoch still differs
  applyCompiled(fm.maps, inodes(1, 10));
  applyCompiled(fm.maps, inodes(1, 20));
  strictEqual(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION), 1n);
  strictEqual(epoch(), 3n);
  // a refused apply (no switch) leaves it
  fm.get("aegis_deny_inode").failAfter = fm.get("aegis_deny_inode").updates;
  throws(() => applyCompiled(fm.maps, inodes(2, 30)));
  strictEqual(epoch(), 3n);
});

Deno.test("applyCompiled: a policy that does not fit beside the live one is refused, nothing written", () => {
  const fm = fakeMaps({ aegis_deny_inode: 10 });
  applyCompiled(fm.maps, inodes(6));
  const before = new Map(fm.get("aegis_deny_inode").data);
  throws(() => applyCompiled(fm.maps, inodes(5, 50)), (e: Error) => {
    ok(e instanceof MapFullError);
    match(
      e.message,
      /^map full: aegis_deny_inode holds 10, needs 11 \(5 new entries beside the 6 live ones during the switch\); nothing was written and the previous policy is still enforcing\. .*aegisbpf uninstall.*aegisbpf run/,
    );
    return true;
  });
  deepStrictEqual(fm.get("aegis_deny_inode").data, before);
  strictEqual(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION), 1n, "no switch");
  applyCompiled(fm.maps, inodes(4, 50)); // 4 + 6 fits
});

Deno.test("applyCompiled: a write failure before the switch removes the partial generation; keepFailed keeps it", () => {
  for (const keepFailed of [false, true]) {
    const fm = fakeMaps();
    applyCompiled(fm.maps, inodes(2));
    fm.get("aegis_deny_inode").failAfter = fm.get("aegis_deny_inode").updates + 3;
    throws(
      () => applyCompiled(fm.maps, inodes(5, 10), { keepFailed }),
      keepFailed
        ? /previous policy is still enforcing \(the partial generation 0 was kept/
        : /previous policy is still enforcing: /,
    );
    strictEqual(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION), 1n);
    const gens = fm.get("aegis_deny_inode").keys().map((k) => keyGeneration("aegis_deny_inode", k));
    strictEqual(gens.filter((g) => g === 1).length, 2, "the live rules are intact");
    strictEqual(gens.filter((g) => g === 0).length, keepFailed ? 3 : 0);
    fm.get("aegis_deny_inode").failAfter = Infinity;
    applyCompiled(fm.maps, inodes(1, 20)); // the next apply clears the leftovers
    strictEqual(fm.get("aegis_deny_inode").data.size, 1);
  }
});

function pipeline(
  dir: string,
  sizes: Record<string, number> = {},
  resolvePath: (p: string) => ResolvedPath = fakeResolvePath(),
) {
  return fakeApplyDeps(dir, { sizes, resolvePath });
}

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("applyPolicyBytes: live rules carried by default, dropped by reset; snapshots; show", async () => {
  const dir = Deno.makeTempDirSync();
  const { fm, live, deps } = pipeline(dir);
  const p1 = enc("version=1\n[deny_path]\n/a\n/missing/x\n");
  const r1 = await applyPolicyBytes(deps, { file: "p1", bytes: p1 });
  deepStrictEqual(r1.unresolved.map((u) => u.what), ["/missing/x"]);
  live.add({ kind: "path", path: "/live" });
  live.add({ kind: "ip", ip: "192.0.2.1" });
  const r2 = await applyPolicyBytes(deps, { file: "p1", bytes: p1 });
  strictEqual(r2.live.carried, 2);
  strictEqual(fm.get("aegis_deny_inode").data.size, 2, "policy /a and live /live");
  strictEqual(fm.get("aegis_deny_ip4").data.size, 1);
  const show = policyShow(fm.maps, dir, live);
  strictEqual(show.generation, 0);
  strictEqual(show.rule_entries.aegis_deny_inode, 2);
  strictEqual(show.live_rules, 2);
  ok(show.policy.includes("/missing/x"));
  // a dry run changes nothing
  const dry = await applyPolicyBytes(deps, { file: "p1", bytes: p1, dryRun: true, reset: true });
  strictEqual(dry.live.dropped.length, 2);
  strictEqual(live.rules().length, 2);
  const r3 = await applyPolicyBytes(deps, { file: "p1", bytes: p1, reset: true });
  strictEqual(r3.live.dropped.length, 2);
  strictEqual(live.rules().length, 0);
  strictEqual(fm.get("aegis_deny_inode").data.size, 1);
  strictEqual(fm.get("aegis_deny_ip4").data.size, 0);
  strictEqual(Deno.statSync(`${dir}/policy.applied`).mode! & 0o777, 0o600);
  ok(Deno.statSync(`${dir}/policy.prev`).isFile);
});

Deno.test("applyPolicyBytes: a live rule on a policy inode survives the apply and del restores the policy rule", async () => {
  const dir = Deno.makeTempDirSync();
  const { fm, live, deps } = pipeline(dir);
  const p = enc("version=1\n[deny_path]\n/a\n");
  await applyPolicyBytes(deps, { file: "p", bytes: p });
  live.add({ kind: "path", path: "/a" }, 3600);
  await applyPolicyBytes(deps, { file: "p", bytes: p });
  const [v] = [...fm.get("aegis_deny_inode").data.values()];
  strictEqual(new DataView(v.buffer).getUint32(0, true), LIVE_RULE_ID_BASE);
  live.del({ kind: "path", path: "/a" });
  const [w] = [...fm.get("aegis_deny_inode").data.values()];
  strictEqual(new DataView(w.buffer).getUint32(0, true), 3, "policy line 3 is back");
});

Deno.test("applyPolicyBytes: refused input changes nothing; map full is recorded for the next start", async () => {
  const dir = Deno.makeTempDirSync();
  const { fm, deps } = pipeline(dir, { aegis_deny_inode: 3 });
  await rejects(
    applyPolicyBytes(deps, { file: "bad", bytes: enc("version=1\n[deny_path]\nrel\n") }),
    (e: Error) => {
      ok(e instanceof PolicyRejectedError);
      strictEqual(e.code, "POLICY_INVALID");
      match(e.issues[0], /^bad:3: error: .*must be absolute/);
      return true;
    },
  );
  await rejects(
    applyPolicyBytes(deps, { file: "p", bytes: enc("version=1\n"), sha256: "0".repeat(64) }),
    /has SHA-256 .* not 0000/,
  );
  await rejects(
    applyPolicyBytes(deps, { file: "p", bytes: enc("version=1\n"), requireSignature: true }),
    /not a signed bundle/,
  );
  strictEqual(fm.get("aegis_config").data.size, 0, "nothing touched");
  await applyPolicyBytes(deps, { file: "p", bytes: enc("version=1\n[deny_path]\n/a\n/bb\n") });
  await rejects(
    applyPolicyBytes(deps, { file: "p", bytes: enc("version=1\n[deny_path]\n/c\n/dd\n") }),
    /map full: aegis_deny_inode holds 3, needs 4/,
  );
  deepStrictEqual(readMapSizeRequests(dir), { aegis_deny_inode: 4 });
  const policy = (await parseAppliedPolicy(dir))?.result.policy;
  const applied = policy ? compilePolicy(policy, deps.compileEnv).compiled : null;
  strictEqual(applied?.entries.length, 2, "policy.applied is the last applied one");
  strictEqual(mapSizesFor(applied, [], readMapSizeRequests(dir)).aegis_deny_inode, 65536);
  strictEqual(mapSizesFor(null, [], readMapSizeRequests(dir)).aegis_deny_inode, 65536);
});

Deno.test("restoreAppliedPolicy: fresh maps get the stored policy and live rules back, state untouched", async () => {
  const dir = Deno.makeTempDirSync();
  const first = pipeline(dir);
  strictEqual(await restoreAppliedPolicy(first.deps), null, "nothing applied: nothing to restore");
  await applyPolicyBytes(first.deps, {
    file: "p",
    bytes: enc("version=1\n[deny_path]\n/a\n/bb\n/missing/y\n"),
  });
  first.live.add({ kind: "ip", ip: "192.0.2.1" });
  const before = ["policy.applied", "policy.sha256", "policy.prev"].map((f) => {
    try {
      return Deno.readTextFileSync(`${dir}/${f}`);
    } catch {
      return null;
    }
  });
  // a restart after a reboot: new, empty maps over the same state directory
  const again = pipeline(dir);
  strictEqual(again.fm.get("aegis_deny_inode").data.size, 0);
  const r = await restoreAppliedPolicy(again.deps);
  ok(r);
  strictEqual(r.entries.aegis_deny_inode, 2);
  strictEqual(r.live, 1);
  deepStrictEqual(r.unresolved.map((u) => u.what), ["/missing/y"], "watched again");
  strictEqual(again.fm.get("aegis_deny_inode").data.size, 2, "both policy paths");
  strictEqual(again.fm.get("aegis_deny_ip4").data.size, 1, "the live rule");
  deepStrictEqual(
    ["policy.applied", "policy.sha256", "policy.prev"].map((f) => {
      try {
        return Deno.readTextFileSync(`${dir}/${f}`);
      } catch {
        return null;
      }
    }),
    before,
    "a restore writes no state file",
  );
});

Deno.test("restoreAppliedPolicy: a changed or unparsable stored policy is refused, the maps untouched", async () => {
  const dir = Deno.makeTempDirSync();
  const { deps } = pipeline(dir);
  await applyPolicyBytes(deps, { file: "p", bytes: enc("version=1\n[deny_path]\n/a\n") });
  Deno.writeTextFileSync(`${dir}/policy.applied`, "version=1\n[deny_path]\n/other\n");
  const fresh = pipeline(dir);
  await rejects(restoreAppliedPolicy(fresh.deps), (e: unknown) => {
    ok(e instanceof PolicyRejectedError);
    strictEqual(e.code, "POLICY_RESTORE_FAILED");
    match(e.message, /changed or damaged/);
    return true;
  });
  strictEqual(fresh.fm.get("aegis_deny_inode").data.size, 0);
  Deno.removeSync(`${dir}/policy.sha256`);
  await rejects(restoreAppliedPolicy(fresh.deps), /records nothing/);
  // a stored file whose hash matches but no longer parses (a newer agent's syntax, say)
  const bad = enc("version=1\n[no_such_section]\nx\n");
  Deno.writeFileSync(`${dir}/policy.applied`, bad);
  const sha = Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bad)))
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  Deno.writeTextFileSync(`${dir}/policy.sha256`, `${sha}\n`);
  await rejects(restoreAppliedPolicy(fresh.deps), /no longer parses/);
  strictEqual(fresh.fm.get("aegis_deny_inode").data.size, 0);
});

Deno.test("restoreAppliedPolicy: the start's parse serves only for the very bytes the restore checked", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { deps } = pipeline(dir);
    await applyPolicyBytes(deps, { file: "p", bytes: enc("version=1\n[deny_path]\n/a\n") });
    const atStart = await parseAppliedPolicy(dir);
    ok(atStart);
    // the same bytes: taken, not parsed again (a stand-in result shows which one was used)
    const standIn = parsePolicy(enc("version=1\n[deny_path]\n/a\n/bb\n"), atStart.file);
    let r = await restoreAppliedPolicy(pipeline(dir).deps, {
      parsed: { ...atStart, result: standIn },
    });
    strictEqual(r?.entries.aegis_deny_inode, 2, "the start's parse");
    // another apply between the start's parse and the restore: the body is parsed again
    await applyPolicyBytes(deps, {
      file: "p",
      bytes: enc("version=1\n[deny_path]\n/a\n/bb\n/ccc\n"),
    });
    r = await restoreAppliedPolicy(pipeline(dir).deps, { parsed: atStart });
    strictEqual(r?.entries.aegis_deny_inode, 3, "not the stale parse");
    // the hash is checked first: a changed body is refused, whatever was parsed at start
    Deno.writeTextFileSync(`${dir}/policy.applied`, "version=1\n[deny_path]\n/other\n");
    const fresh = pipeline(dir);
    await rejects(
      restoreAppliedPolicy(fresh.deps, { parsed: await parseAppliedPolicy(dir) }),
      /changed or damaged/,
    );
    strictEqual(fresh.fm.get("aegis_deny_inode").data.size, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** A trusted key in `<dir>/keys` (owned by the test's uid, as pipeline() expects). */
async function trustKey(dir: string): Promise<KeyPairBytes> {
  Deno.chmodSync(dir, 0o755);
  const kp = await generateKeyPair();
  Deno.writeTextFileSync(`${dir}/key.pub`, toHex(kp.publicRaw) + "\n");
  await addKey(`${dir}/key.pub`, `${dir}/keys`);
  return kp;
}

async function bundleOf(kp: KeyPairBytes, body: string, version: number, expires?: number) {
  const now = Math.floor(Date.now() / 1000);
  return await signBundle(enc(body), {
    secretKey: kp.secretPkcs8.slice(),
    policyVersion: version,
    timestamp: now - 60,
    expires: expires ?? now + 3600,
  });
}

Deno.test("restoreAppliedPolicy: a policy applied from a signed bundle is verified again at restore", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const kp = await trustKey(dir);
    const { deps } = pipeline(dir);
    const v5 = await bundleOf(kp, "version=1\n[deny_path]\n/a\n", 5);
    const applied = await applyPolicyBytes(deps, { file: "b5", bytes: v5 });
    deepStrictEqual(applied.signed?.policy_version, 5);
    deepStrictEqual(Deno.readFileSync(bundleFileFor(dir, applied.body_sha256!)), v5, "bundle kept");
    ok(await isAppliedPolicy(dir, v5, true), "the same bundle is the applied policy");

    const r = await restoreAppliedPolicy(pipeline(dir).deps, { requireSignature: true });
    strictEqual(r?.signed?.policy_version, 5);
    strictEqual(r?.entries.aegis_deny_inode, 1);

    // the kept bundle swapped for an older, validly signed one: a rollback
    const v4 = await bundleOf(kp, "version=1\n[deny_path]\n/a\n", 4);
    Deno.writeFileSync(bundleFileFor(dir, applied.body_sha256!), v4);
    let fresh = pipeline(dir);
    await rejects(
      restoreAppliedPolicy(fresh.deps),
      /older bundle than the last one applied \(policy_version 5\): a rollback/,
    );
    // the body is unchanged, so the start's parse is of it: the bundle is still checked
    await rejects(
      restoreAppliedPolicy(fresh.deps, { parsed: await parseAppliedPolicy(dir) }),
      /a rollback/,
    );
    strictEqual(fresh.fm.get("aegis_deny_inode").data.size, 0, "nothing restored");

    // a forged signature
    const forged = v5.slice();
    forged[forged.length - 2] ^= 1; // the body: hash mismatch
    Deno.writeFileSync(bundleFileFor(dir, applied.body_sha256!), forged);
    fresh = pipeline(dir);
    await rejects(restoreAppliedPolicy(fresh.deps), (e: unknown) => {
      ok(e instanceof PolicyRejectedError);
      strictEqual(e.code, "POLICY_RESTORE_FAILED");
      return true;
    });

    // the key no longer trusted
    Deno.writeFileSync(bundleFileFor(dir, applied.body_sha256!), v5);
    Deno.removeSync(`${dir}/keys`, { recursive: true });
    await rejects(restoreAppliedPolicy(pipeline(dir).deps), /not among the 0 trusted key/);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("restoreAppliedPolicy: --require-signature refuses a policy applied from a plain file", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { deps } = pipeline(dir);
    const plain = enc("version=1\n[deny_path]\n/a\n");
    await applyPolicyBytes(deps, { file: "p", bytes: plain });
    ok(await isAppliedPolicy(dir, plain, false));
    strictEqual(await isAppliedPolicy(dir, plain, true), false, "must come as a bundle");
    ok(await restoreAppliedPolicy(pipeline(dir).deps), "without the flag it restores");
    await rejects(
      restoreAppliedPolicy(pipeline(dir).deps, { requireSignature: true }),
      /plain policy file, not a signed bundle/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("restoreAppliedPolicy: an expired bundle keeps enforcing after a restart, with a warning", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const kp = await trustKey(dir);
    const { deps } = pipeline(dir);
    const soon = Math.floor(Date.now() / 1000) + 1;
    const b = await bundleOf(kp, "version=1\n[deny_path]\n/a\n", 1, soon);
    await applyPolicyBytes(deps, { file: "b", bytes: b });
    await new Promise((res) => setTimeout(res, 2100));
    const r = await restoreAppliedPolicy(pipeline(dir).deps, { requireSignature: true });
    strictEqual(r?.entries.aegis_deny_inode, 1);
    ok(
      r?.warnings.some((w) => /expired at .* stays enforced/.test(w)),
      JSON.stringify(r?.warnings),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("applyPolicyBytes: a plain apply after a bundle drops the kept bundle", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const kp = await trustKey(dir);
    const { deps } = pipeline(dir);
    await applyPolicyBytes(deps, {
      file: "b",
      bytes: await bundleOf(kp, "version=1\n[deny_path]\n/a\n", 1),
    });
    strictEqual(
      [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("policy.bundle-")).length,
      1,
    );
    await applyPolicyBytes(deps, { file: "p", bytes: enc("version=1\n[deny_path]\n/bb\n") });
    deepStrictEqual(
      [...Deno.readDirSync(dir)].filter((e) => e.name.startsWith("policy.bundle-")),
      [],
    );
    strictEqual((await restoreAppliedPolicy(pipeline(dir).deps))?.signed, null);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("restoreAppliedPolicy(readopted): maps that hold the stored state are left alone; any difference is repaired", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { fm, deps, live } = pipeline(dir);
    await applyPolicyBytes(deps, { file: "p", bytes: enc("version=1\n[deny_path]\n/a\n/bb\n") });
    live.add({ kind: "ip", ip: "192.0.2.1" });
    const gen = () => Number(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION));
    const g0 = gen();

    // the same maps after a restart (re-adopted pins): nothing to do
    const same = await restoreAppliedPolicy(deps, { readopted: true });
    strictEqual(same?.generation, null, "no switch");
    deepStrictEqual(same?.diff, { expected: 3, missing: 0, extra: 0, changed: 0, flagsMissing: 0 });
    strictEqual(gen(), g0);

    // an entry smuggled into the live generation behind the agent's back
    const inode = fm.get("aegis_deny_inode");
    const smuggled = inodeKey(1, 999, g0 & 1);
    inode.update(smuggled, ruleValue(99, AEGIS_RULE_DENY, AEGIS_RT_INODE));
    const r1 = await restoreAppliedPolicy(deps, { readopted: true });
    deepStrictEqual(r1?.diff, { expected: 3, missing: 0, extra: 1, changed: 0, flagsMissing: 0 });
    ok(r1?.generation, "repaired through a switch");
    strictEqual(gen(), 1 - g0);
    strictEqual(inode.data.size, 2, "the smuggled entry is gone, the policy's two stay");

    // a value changed, and an entry removed
    const [k0, k1] = inode.keys();
    inode.update(k0, ruleValue(1234, AEGIS_RULE_DENY, AEGIS_RT_INODE));
    inode.delete(k1);
    const r2 = await restoreAppliedPolicy(deps, { readopted: true });
    deepStrictEqual(r2?.diff, { expected: 3, missing: 1, extra: 0, changed: 1, flagsMissing: 0 });
    strictEqual(inode.data.size, 2);
    strictEqual(fm.get("aegis_deny_ip4").data.size, 1, "the live rule stays");
    deepStrictEqual(
      (await restoreAppliedPolicy(deps, { readopted: true }))?.diff,
      { expected: 3, missing: 0, extra: 0, changed: 0, flagsMissing: 0 },
      "and now they match",
    );

    // the generation's switches turned off
    fm.get("aegis_policy").update(u32Key(gen()), policyValue(0));
    const r3 = await restoreAppliedPolicy(deps, { readopted: true });
    ok((r3?.diff?.flagsMissing ?? 0) !== 0, JSON.stringify(r3?.diff));
    ok(r3?.generation);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("restoreAppliedPolicy: live rules without any applied policy come back too", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const first = pipeline(dir);
    first.live.add({ kind: "ip", ip: "192.0.2.7" });
    const again = pipeline(dir);
    const r = await restoreAppliedPolicy(again.deps);
    strictEqual(r?.sha256, null);
    strictEqual(r?.live, 1);
    strictEqual(again.fm.get("aegis_deny_ip4").data.size, 1, "the live rule is back");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("restoreAppliedPolicy: live file rules are resolved again by path; a gone file's rule is dropped", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const first = pipeline(dir); // dev 5
    first.live.add({ kind: "path", path: "/a" });
    first.live.add({ kind: "path", path: "/bbb" });
    // the next boot: another device number, and /bbb is gone
    const nextBoot = (p: string): ResolvedPath =>
      p === "/bbb"
        ? { status: "unresolved", path: p, reason: "does not exist (yet)" }
        : { status: "resolved", path: p, canonical: p, dev: 9, ino: p.length };
    const again = pipeline(dir, {}, nextBoot);
    const r = await restoreAppliedPolicy(again.deps);
    deepStrictEqual(r?.rekeyed.map((x) => [x.spec.kind === "path" && x.spec.dev, x.id]), [
      [9, LIVE_RULE_ID_BASE],
    ]);
    deepStrictEqual(r?.dropped.map((x) => x.id), [LIVE_RULE_ID_BASE + 1]);
    strictEqual(r?.live, 1);
    const keys = again.fm.get("aegis_deny_inode").keys();
    strictEqual(keys.length, 1);
    strictEqual(toHex(keys[0]), toHex(inodeKey(9, 2, keyGeneration("aegis_deny_inode", keys[0]))));
    deepStrictEqual(again.live.rules().map((x) => x.id), [LIVE_RULE_ID_BASE], "the store agrees");
    // nothing changed since: nothing to refresh
    deepStrictEqual(again.live.refreshIdentities(), { changed: [], dropped: [] });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("applyPolicyBytes + restore: deny_binary_hash lands in aegis_deny_hash with its switch, and comes back", async () => {
  const dir = Deno.makeTempDirSync();
  const { fm, live, deps } = pipeline(dir);
  const sha = "ab".repeat(32);
  const text = `version=3\n[deny_binary_hash]\nsha256:${sha.toUpperCase()}\n`;
  await applyPolicyBytes(deps, { file: "h", bytes: enc(text) });
  const gen = Number(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION));
  const keys = fm.get("aegis_deny_hash").keys();
  deepStrictEqual(keys.map(toHex), [toHex(hashKey(sha, gen))]);
  const flags = new DataView(fm.get("aegis_policy").lookup(u32Key(gen))!.buffer).getUint32(0, true);
  strictEqual(flags & AEGIS_POL_EXEC_HASH, AEGIS_POL_EXEC_HASH);
  ok(policyShow(fm.maps, dir, live).policy.includes(`sha256:${sha.toUpperCase()}`));
  // fresh maps (a restart without pins): the stored policy brings the rule back
  const again = pipeline(dir);
  await restoreAppliedPolicy(again.deps);
  strictEqual(again.fm.get("aegis_deny_hash").keys().length, 1);
  // a policy without the section removes it and clears the switch
  await applyPolicyBytes(deps, { file: "h2", bytes: enc("version=3\n[deny_comm]\nnc\n") });
  strictEqual(fm.get("aegis_deny_hash").keys().length, 0);
  const g2 = Number(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION));
  const f2 = new DataView(fm.get("aegis_policy").lookup(u32Key(g2))!.buffer).getUint32(0, true);
  strictEqual(f2 & AEGIS_POL_EXEC_HASH, 0);
});

Deno.test("applyPolicyBytes: an allowlist (allow_binary_hash) is accepted: ALLOW entries and the allowlist switch", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { fm, deps } = pipeline(dir);
    const allowed = "cd".repeat(32);
    const denied = "ef".repeat(32);
    const text =
      `version=3\n[deny_binary_hash]\nsha256:${denied}\n[allow_binary_hash]\nsha256:${allowed}\n`;
    await applyPolicyBytes(deps, { file: "a", bytes: enc(text) });
    const gen = Number(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION));
    const m = fm.get("aegis_deny_hash");
    const flagOf = (sha: string) =>
      new DataView(m.lookup(hashKey(sha, gen))!.buffer).getUint16(4, true);
    strictEqual(flagOf(allowed), AEGIS_RULE_ALLOW);
    strictEqual(flagOf(denied), AEGIS_RULE_DENY);
    const flags = new DataView(fm.get("aegis_policy").lookup(u32Key(gen))!.buffer)
      .getUint32(0, true);
    strictEqual(flags & AEGIS_POL_EXEC_ALLOWLIST, AEGIS_POL_EXEC_ALLOWLIST);
    strictEqual(flags & AEGIS_POL_EXEC_HASH, AEGIS_POL_EXEC_HASH);
    // dropped again: no entry, no switch
    await applyPolicyBytes(deps, { file: "b", bytes: enc("version=3\n[deny_comm]\nnc\n") });
    strictEqual(m.keys().length, 0);
    const g2 = Number(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION));
    const f2 = new DataView(fm.get("aegis_policy").lookup(u32Key(g2))!.buffer).getUint32(0, true);
    strictEqual(f2 & AEGIS_POL_EXEC_ALLOWLIST, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("applyPolicyBytes: a v5 policy (trusted_exec_hash, ima_fail_closed, protect_runtime_deps) is accepted: TRUSTED entries and the switches", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const { fm, deps } = pipeline(dir);
    const trusted = "ab".repeat(32);
    const both = "cd".repeat(32);
    const text = `version=5\n[allow_binary_hash]\nsha256:${both}\n[trusted_exec_hash]\n` +
      `sha256:${trusted}\nsha256:${both}\n[ima_fail_closed]\n[protect_connect]\n` +
      "[protect_runtime_deps]\n[require_ima_appraisal]\n";
    await applyPolicyBytes(deps, { file: "a", bytes: enc(text) });
    const gen = Number(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION));
    const m = fm.get("aegis_deny_hash");
    const flagOf = (sha: string) =>
      new DataView(m.lookup(hashKey(sha, gen))!.buffer).getUint16(4, true);
    strictEqual(flagOf(trusted), AEGIS_RULE_TRUSTED);
    strictEqual(flagOf(both), AEGIS_RULE_ALLOW | AEGIS_RULE_TRUSTED, "one entry, both lists");
    const flags = new DataView(fm.get("aegis_policy").lookup(u32Key(gen))!.buffer)
      .getUint32(0, true);
    const want = AEGIS_POL_EXEC_TRUSTED | AEGIS_POL_IMA_FAIL_CLOSED | AEGIS_POL_RUNTIME_DEPS |
      AEGIS_POL_EXEC_ALLOWLIST;
    strictEqual(flags & want, want);
    strictEqual(flags & AEGIS_POL_EXEC_HASH, 0, "no deny list");
    // dropped again: no entry, no switch
    await applyPolicyBytes(deps, { file: "b", bytes: enc("version=5\n[deny_comm]\nnc\n") });
    strictEqual(m.keys().length, 0);
    const g2 = Number(fm.get("aegis_config").sumU64(AEGIS_CFG_GENERATION));
    const f2 = new DataView(fm.get("aegis_policy").lookup(u32Key(g2))!.buffer).getUint32(0, true);
    strictEqual(f2 & want, 0);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("applyPolicyBytes and restore with a content scan (source scan): its matches are inode deny rules with the hash line; only with [deny_binary_hash]", async () => {
  const dir = Deno.makeTempDirSync();
  const sha = "ab".repeat(32);
  const scans: string[][] = [];
  const withScan = (p: ReturnType<typeof pipeline>) => {
    p.deps.contentScan = (policy) => {
      scans.push(policy.scanPaths.map((e) => e.path));
      return Promise.resolve({
        dirs: ["/usr/bin", ...policy.scanPaths.map((e) => e.path)],
        hashed: 3,
        bytes: 30,
        matches: [
          { path: "/usr/bin/nc", sha256: sha, line: 3 },
          { path: "/missing/gone", sha256: sha, line: 3 },
        ],
        skipped: ["/opt/x: does not exist"],
        ms: 7,
      });
    };
    return p;
  };
  const { fm, deps } = withScan(pipeline(dir));
  const text = `version=3\n[deny_binary_hash]\nsha256:${sha}\n[scan_paths]\n/opt/x\n`;
  const r = await applyPolicyBytes(deps, { file: "p", bytes: enc(text) });
  deepStrictEqual(scans, [["/opt/x"]]);
  deepStrictEqual(r.content_scan?.matches.map((m) => m.path), ["/usr/bin/nc", "/missing/gone"]);
  strictEqual(r.content_scan?.files_hashed, 3);
  ok(r.warnings.includes("content scan: not scanned: /opt/x: does not exist"), r.warnings.join());
  // the file found: an inode deny rule, rule id = the hash line; one gone since: unresolved
  const gen = r.generation!.to;
  deepStrictEqual(
    fm.get("aegis_deny_inode").data.get(toHex(inodeKey(5, "/usr/bin/nc".length, gen))),
    ruleValue(3, AEGIS_RULE_DENY, AEGIS_RT_INODE),
  );
  strictEqual(fm.get("aegis_deny_inode").data.size, 1);
  deepStrictEqual(r.unresolved.map((u) => [u.section, u.what]), [[
    "deny_binary_hash",
    "/missing/gone",
  ]]);
  // the content rule is still there for the kernel's hash where it runs
  strictEqual(fm.get("aegis_deny_hash").data.size, 1);
  // a policy without a deny list: no scan
  const r2 = await applyPolicyBytes(deps, {
    file: "q",
    bytes: enc("version=1\n[deny_path]\n/a\n"),
  });
  strictEqual(r2.content_scan, undefined);
  strictEqual(scans.length, 1);
  // the restore scans again (new inodes after a reboot)
  await applyPolicyBytes(deps, { file: "p", bytes: enc(text) });
  const again = withScan(pipeline(dir));
  const rr = await restoreAppliedPolicy(again.deps);
  strictEqual(scans.length, 3);
  strictEqual(rr?.content_scan?.matches.length, 2);
  strictEqual(again.fm.get("aegis_deny_inode").data.size, 1);
  // without the dep, or a dep that answers null (the kernel hashes): no scan, no inode rule
  const plain = pipeline(dir);
  const rp = await restoreAppliedPolicy(plain.deps);
  strictEqual(rp?.content_scan, undefined);
  strictEqual(plain.fm.get("aegis_deny_inode").data.size, 0);
  const ima = pipeline(dir);
  ima.deps.contentScan = () => Promise.resolve(null);
  const ri = await restoreAppliedPolicy(ima.deps);
  strictEqual(ri?.content_scan, undefined);
  strictEqual(ima.fm.get("aegis_deny_inode").data.size, 0);
});
