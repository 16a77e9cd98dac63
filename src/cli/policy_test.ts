/**
 * `policy sign|verify|apply --dry-run` through the command parser, without an
 * agent: bounded reads (issue 12: `--sha256-file /dev/zero` read 5.5 GB) and
 * the v2 bundle path end to end.
 */
import assert from "node:assert/strict";
import { Command } from "@commander-js/extra-typings";
import { addPolicyCommand, pinnedScanSource } from "./policy.ts";
import { keygen } from "../policy/keys.ts";
import { addKey } from "../policy/keys.ts";

async function run(...args: string[]): Promise<unknown> {
  const program = new Command().exitOverride();
  addPolicyCommand(program);
  try {
    await program.parseAsync(args, { from: "user" });
    return null;
  } catch (e) {
    return e;
  }
}

const ENV = ["AEGIS_STATE_DIR", "AEGIS_KEYS_DIR", "AEGIS_CONTROL_SOCKET"] as const;

/** A temp dir and the CLI's env pointed into it; the env (process-wide) is restored after. */
async function inSandbox(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = Deno.makeTempDirSync({ prefix: "aegis-cli-policy-" });
  const saved = ENV.map((n) => [n, Deno.env.get(n)] as const);
  Deno.env.set("AEGIS_STATE_DIR", `${dir}/state`);
  Deno.env.set("AEGIS_KEYS_DIR", `${dir}/keys`);
  // no daemon: the CLI does the (dry-run) work itself
  Deno.env.set("AEGIS_CONTROL_SOCKET", `${dir}/no-daemon.sock`);
  Deno.writeTextFileSync(`${dir}/p.conf`, "version=1\n[deny_path]\n/nonexistent/aegis-x\n");
  try {
    await fn(dir);
  } finally {
    for (const [n, v] of saved) v === undefined ? Deno.env.delete(n) : Deno.env.set(n, v);
    Deno.removeSync(dir, { recursive: true });
  }
}

function refused(e: unknown, code: string, re: RegExp): void {
  assert.ok(e instanceof Error, `expected an error, got ${e}`);
  assert.equal((e as { code?: string }).code, code, e.message);
  assert.match(e.message, re);
}

Deno.test("policy apply --sha256-file: /dev/zero and oversized files are refused by name and limit", async () => {
  await inSandbox(async (dir) => {
    refused(
      await run("policy", "apply", "--dry-run", "--sha256-file", "/dev/zero", `${dir}/p.conf`),
      "USAGE",
      /^--sha256-file "\/dev\/zero" is a character device; expected a regular file of at most 65536 bytes/,
    );
    Deno.writeTextFileSync(`${dir}/big.sha`, "a".repeat(65537));
    refused(
      await run("policy", "apply", "--dry-run", "--sha256-file", `${dir}/big.sha`, `${dir}/p.conf`),
      "USAGE",
      /big\.sha" is 65537 bytes; the limit is 65536 bytes \(64 KiB\)/,
    );
    Deno.writeTextFileSync(`${dir}/bad.sha`, "xyz  p.conf\n");
    refused(
      await run("policy", "apply", "--dry-run", "--sha256-file", `${dir}/bad.sha`, `${dir}/p.conf`),
      "USAGE",
      /no SHA-256 \(64 hex characters\) at its start/,
    );
    // the policy file itself: a device is refused, not read
    refused(
      await run("policy", "apply", "--dry-run", "/dev/zero"),
      "USAGE",
      /policy file or bundle "\/dev\/zero" is a character device/,
    );
    refused(await run("policy", "validate", dir), "USAGE", /policy file ".*" is a directory/);
  });
});

Deno.test("policy sign writes v2; verify accepts it; bad option values are refused with the range", async () => {
  await inSandbox(async (dir) => {
    const k = await keygen(`${dir}/k`);
    Deno.mkdirSync(`${dir}/keys`, { mode: 0o755 });
    Deno.chmodSync(`${dir}/keys`, 0o755);
    await addKey(k.pubPath, `${dir}/keys`);
    const out = `${dir}/p.bundle`;
    const sign = (...extra: string[]) =>
      run("policy", "sign", `${dir}/p.conf`, "--key", k.keyPath, "--output", out, ...extra);
    refused(
      await sign("--expires-in", "31622401"),
      "USAGE",
      /--expires-in "31622401": from 1 second to 366 days/,
    );
    refused(await sign("--expires-in", "367d"), "USAGE", /--expires-in "367d"/);
    refused(await sign("--expires-in", "2w"), "USAGE", /write a whole number with s, m, h or d/);
    refused(await sign("--policy-version", "1e3"), "USAGE", /--policy-version "1e3"/);
    refused(await sign("--policy-version", "0"), "USAGE", /--policy-version "0"/);
    assert.throws(() => Deno.statSync(out), Deno.errors.NotFound, "nothing written");
    assert.equal(await sign("--policy-version", "7", "--expires-in", "30d"), null);
    assert.ok(Deno.readTextFileSync(out).startsWith("AEGIS-POLICY-BUNDLE-V2\nformat_version: 2\n"));
    // verify needs root-owned trusted keys; as another user it reports the skipped folder
    const uid = Deno.statSync(dir).uid;
    const v = await run("policy", "verify", out);
    if (uid === 0) assert.equal(v, null, String(v));
    else refused(v, "BUNDLE_UNTRUSTED_KEY", /not among/);
  });
});

Deno.test("a local apply scans contents only when the pinned links hold no exec-hash program but exec and open inode rules", () => {
  const root = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${root}/links`);
    const pin = (p: string) => Deno.writeTextFileSync(`${root}/links/${p}`, "");
    assert.equal(pinnedScanSource(root), false, "nothing pinned");
    pin("aegis_bprm_check");
    assert.equal(pinnedScanSource(root), false, "no open hook");
    pin("aegis_inode_permission");
    assert.equal(pinnedScanSource(root), true, "exec + open inode rules, no exec-hash program");
    pin("aegis_bprm_hash");
    assert.equal(pinnedScanSource(root), false, "the kernel hashes: no scan");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
