/**
 * VM tier: protect_path / protect_connect and the per-process "verified"
 * state (bpf/protect.bpf.c, bpf/lib/verified.h).
 *
 * The guest's `/` is an overlay, and overlayfs never verifies, so the
 * trusted binaries live on a tmpfs mounted below /usr/local: root-owned
 * 0755 copies of cat and bash there are verified. Unverified: the same
 * copies in /tmp (not below /usr…), a group-writable copy and a
 * non-root-owned copy in the trusted tmpfs, /usr/bin/cat itself (overlay),
 * `bash -c`, a script whose interpreter or file is unverified, and the test
 * process (it started before the programs were attached: no state).
 * A subshell of a verified script (a fork, no exec) inherits the state.
 *
 * lsm-off cells: the programs load and attach and deny nothing.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_BLOCK,
  AEGIS_HOOK_FILE_OPEN,
  AEGIS_HOOK_SOCKET_CONNECT,
  AEGIS_POL_FILE_RULES,
  AEGIS_POL_NET_RULES,
  AEGIS_RT_INODE,
  AEGIS_RT_IP,
  AEGIS_RULE_DENY,
  AEGIS_RULE_PROTECT,
} from "../../src/bpf/abi_gen.ts";
import { ipKey, parseIp } from "../../src/bpf/net_codec.ts";
import { inodeKey as encodeInodeKey, kernelDev, ruleValue } from "../../src/bpf/rule_codec.ts";
import type { FileBlockRecord, NetBlockRecord } from "../../src/events/decode.ts";
import { loadEngine } from "../lib/engine.ts";
import { run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const VERIFIED_PROGRAMS = [
  "aegis_verified_exec_start",
  "aegis_verified_exec_check",
  "aegis_verified_exec_commit",
  "aegis_verified_fork",
];
const RULE_ID = 777;
const PROTECT = ruleValue(RULE_ID, AEGIS_RULE_PROTECT, AEGIS_RT_INODE);

function inodeKey(path: string, gen = 0): Uint8Array<ArrayBuffer> {
  const st = Deno.statSync(path);
  return encodeInodeKey(kernelDev(st.dev), st.ino!, gen);
}

async function sh(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args);
  strictEqual(r.code, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
}

/** "denied" (EPERM in stderr), "ok:<stdout>", else the details. */
async function reads(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (/Operation not permitted/.test(r.stderr)) return "denied";
  if (r.code === 0) return `ok:${r.stdout.trim()}`;
  return `code ${r.code}: ${r.stderr.trim()}`;
}

interface Fixture {
  trusted: string; // tmpfs below /usr/local
  tmp: string; // below /tmp
  secret: string;
  cleanup(): Promise<void>;
}

async function fixture(): Promise<Fixture> {
  const trusted = Deno.makeTempDirSync({ dir: "/usr/local", prefix: "aegis-vt-" });
  await sh("mount", ["-t", "tmpfs", "-o", "mode=0755", "tmpfs", trusted]);
  const tmp = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-prot-" });
  for (
    const [src, dst, mode] of [
      ["/usr/bin/cat", `${trusted}/cat`, 0o755],
      ["/usr/bin/bash", `${trusted}/bash`, 0o755],
      ["/usr/bin/cat", `${trusted}/cat-gw`, 0o775],
      ["/usr/bin/cat", `${trusted}/cat-user`, 0o755],
      ["/usr/bin/cat", `${tmp}/cat`, 0o755],
      ["/usr/bin/bash", `${tmp}/bash`, 0o755],
    ] as const
  ) {
    Deno.copyFileSync(src, dst);
    Deno.chmodSync(dst, mode);
  }
  Deno.chownSync(`${trusted}/cat-user`, 1000, 1000);
  const body = [
    'read -r l < "$1"; echo "$l"',
    '( read -r m < "$1"; echo "sub:$m" )',
    "",
  ].join("\n");
  for (
    const [path, interp] of [
      [`${trusted}/read.sh`, `${trusted}/bash`],
      [`${trusted}/read-tmpbash.sh`, `${tmp}/bash`],
      [`${tmp}/read.sh`, `${trusted}/bash`],
    ]
  ) {
    Deno.writeTextFileSync(path, `#!${interp}\n${body}`);
    Deno.chmodSync(path, 0o755);
  }
  const secret = `${tmp}/secret`;
  Deno.writeTextFileSync(secret, "s3cret\n");
  return {
    trusted,
    tmp,
    secret,
    cleanup: async () => {
      await run("umount", [trusted]);
      Deno.removeSync(trusted, { recursive: true });
      Deno.removeSync(tmp, { recursive: true });
    },
  };
}

function fileBlocks(recs: { kind: string }[]): FileBlockRecord[] {
  return recs.filter((r) => r.kind === "file_block") as FileBlockRecord[];
}

Deno.test({
  name: "protect_path: verified executables read, unverified ones get EPERM with a record",
  ignore: !LSM_ON,
  fn: async (t) => {
    const f = await fixture();
    await using eng = await loadEngine((_s, p) =>
      VERIFIED_PROGRAMS.includes(p) || p === "aegis_file_open"
    );
    try {
      deepStrictEqual(
        eng.attach.filter((a) => a.status === "attached").map((a) => a.program).sort(),
        [...VERIFIED_PROGRAMS, "aegis_file_open"].sort(),
      );
      eng.setPolicy(AEGIS_POL_FILE_RULES);
      const rules = eng.map("aegis_deny_inode");
      strictEqual(await reads(`${f.tmp}/cat`, [f.secret]), "ok:s3cret", "no rule yet");
      rules.update(inodeKey(f.secret), PROTECT);
      eng.records();

      await t.step("verified: root-owned 0755 on tmpfs below /usr", async () => {
        strictEqual(await reads(`${f.trusted}/cat`, [f.secret]), "ok:s3cret");
        strictEqual(fileBlocks(eng.records()).length, 0, "no record for an allowed read");
      });
      await t.step("unverified: a copy in /tmp; EPERM and a BLOCK record", async () => {
        strictEqual(await reads(`${f.tmp}/cat`, [f.secret]), "denied");
        const [blk] = fileBlocks(eng.records());
        ok(blk, "a block record");
        strictEqual(blk.action, AEGIS_ACT_BLOCK);
        strictEqual(blk.hook, AEGIS_HOOK_FILE_OPEN);
        strictEqual(blk.ruleFlags, AEGIS_RULE_PROTECT);
        strictEqual(blk.ruleId, RULE_ID);
        strictEqual(blk.ino, Deno.statSync(f.secret).ino);
      });
      await t.step("unverified: group-writable, non-root owner, overlayfs", async () => {
        strictEqual(await reads(`${f.trusted}/cat-gw`, [f.secret]), "denied", "mode 0775");
        strictEqual(await reads(`${f.trusted}/cat-user`, [f.secret]), "denied", "uid 1000");
        strictEqual(await reads("/usr/bin/cat", [f.secret]), "denied", "on the guest overlay");
        strictEqual(tryOpen(f.secret), "EPERM/EACCES", "this process: started before, no state");
      });
      await t.step("scripts, inline code and fork inheritance", async () => {
        strictEqual(
          await reads(`${f.trusted}/read.sh`, [f.secret]),
          "ok:s3cret\nsub:s3cret",
          "verified script + interpreter; the subshell (fork) inherits",
        );
        strictEqual(await reads(`${f.trusted}/read-tmpbash.sh`, [f.secret]), "denied");
        strictEqual(await reads(`${f.tmp}/read.sh`, [f.secret]), "denied", "script in /tmp");
        const inline = ['read -r l < "$0" && echo "$l"', f.secret];
        strictEqual(await reads(`${f.trusted}/bash`, ["-c", ...inline]), "denied", "bash -c");
        strictEqual(await reads(`${f.trusted}/bash`, ["-lc", ...inline]), "denied", "bash -lc");
        // an unverified parent (bash -c) exec'ing a verified binary: verified again
        strictEqual(
          await reads(`${f.trusted}/bash`, ["-c", `exec ${f.trusted}/cat "$0"`, f.secret]),
          "ok:s3cret",
        );
        eng.records();
      });
      await t.step("deny beats protect; audit mode reports", async () => {
        rules.update(
          inodeKey(f.secret),
          ruleValue(RULE_ID, AEGIS_RULE_DENY | AEGIS_RULE_PROTECT, AEGIS_RT_INODE),
        );
        strictEqual(await reads(`${f.trusted}/cat`, [f.secret]), "denied", "verified, but deny");
        rules.update(inodeKey(f.secret), PROTECT);
        eng.records();
        eng.setAudit(true);
        strictEqual(await reads(`${f.tmp}/cat`, [f.secret]), "ok:s3cret", "audit: allowed");
        const audits = fileBlocks(eng.records());
        strictEqual(audits.length, 1);
        strictEqual(audits[0].action, AEGIS_ACT_AUDIT);
        eng.setAudit(false);
      });
    } finally {
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "protect_connect: a verified script connects, unverified processes get EPERM",
  ignore: !LSM_ON,
  fn: async () => {
    const flags = Number(Deno.readTextFileSync("/sys/class/net/lo/flags").trim());
    if (!(flags & 1)) await sh("ip", ["link", "set", "lo", "up"]);
    const f = await fixture();
    await using eng = await loadEngine((_s, p) =>
      VERIFIED_PROGRAMS.includes(p) || p === "aegis_socket_connect"
    );
    try {
      using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (l.addr as Deno.NetAddr).port;
      const script = `${f.trusted}/connect.sh`;
      Deno.writeTextFileSync(
        script,
        `#!${f.trusted}/bash\nexec 3<>/dev/tcp/127.0.0.1/${port} && echo connected\n`,
      );
      Deno.chmodSync(script, 0o755);
      eng.setPolicy(AEGIS_POL_NET_RULES);
      const k = ipKey(parseIp("127.0.0.1"), 0);
      eng.map(k.map).update(k.key, ruleValue(RULE_ID, AEGIS_RULE_PROTECT, AEGIS_RT_IP));
      eng.records();
      strictEqual(await reads(script, []), "ok:connected", "verified script");
      let res = "ok";
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      } catch (e) {
        res = e instanceof Error && /os error 1\)|Operation not permitted/.test(e.message)
          ? "EPERM"
          : String(e);
      }
      strictEqual(res, "EPERM", "this (unverified) process");
      const inline = await reads(`${f.trusted}/bash`, ["-c", `exec 3<>/dev/tcp/127.0.0.1/${port}`]);
      strictEqual(inline, "denied", "bash -c");
      const blocks = eng.records().filter((r) => r.kind === "net_block") as NetBlockRecord[];
      ok(blocks.length >= 2, `records: ${blocks.length}`);
      ok(blocks.every((b) => b.hook === AEGIS_HOOK_SOCKET_CONNECT && b.ruleId === RULE_ID));
    } finally {
      await f.cleanup();
    }
  },
});

Deno.test({
  name: "without bpf in lsm= the verified-state programs load and attach",
  ignore: LSM_ON,
  fn: async () => {
    await using eng = await loadEngine((_s, p) =>
      VERIFIED_PROGRAMS.includes(p) || p === "aegis_file_open"
    );
    strictEqual(eng.attach.filter((a) => a.status === "attached").length, 5);
    const f = await fixture();
    try {
      eng.setPolicy(AEGIS_POL_FILE_RULES);
      eng.map("aegis_deny_inode").update(inodeKey(f.secret), PROTECT);
      strictEqual(await reads(`${f.tmp}/cat`, [f.secret]), "ok:s3cret", "nothing enforced");
    } finally {
      await f.cleanup();
    }
  },
});
