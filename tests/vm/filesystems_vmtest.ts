/**
 * VM tier: file rules on the file systems operators use (issue 19,
 * docs/engine.md "File identity per file system"). In one boot: ext4 and
 * xfs on loop devices, an overlay whose lower layer is on ext4 and upper on
 * xfs, the guest's own root (an overlay of a 9p lower and a tmpfs upper:
 * scripts/vm/init.sh), and btrfs (top level, a subvolume, a snapshot of it). On each, a rule resolved by the agent's own
 * resolveRulePath denies the file and every alias (hard link, symlink,
 * rename, bind mount, O_PATH reopen, openat2, "..", exec) with a block
 * record carrying the resolved identity, and a protect rule refuses an
 * unverified task; an overlay lower file stays
 * denied after a copy-up attempt and a cache drop; a btrfs subvolume's file
 * and its snapshot's copy (same inode number) are told apart. 9p and an
 * xino=on overlay's lower files, and btrfs when the programs were loaded
 * without the btrfs module's BTF, are refused at resolve (= apply) time with
 * an error naming the path and the file system.
 *
 * lsm-on cells only (the lsm-off cells prove elsewhere that nothing is
 * enforced there).
 *
 * Negative controls (run by hand, each must fail the overlay steps):
 * AEGIS_VM_BREAK_FS=stat keys the rules on stat()'s st_dev as before
 * issue 19; AEGIS_VM_BREAK_FS=copyup leaves lsm/inode_copy_up out.
 */
import { match, ok, strictEqual, throws } from "node:assert/strict";
import {
  AEGIS_ACT_BLOCK,
  AEGIS_POL_FILE_RULES,
  AEGIS_RT_INODE,
  AEGIS_RULE_DENY,
  AEGIS_RULE_PROTECT,
} from "../../src/bpf/abi_gen.ts";
import { btrfsBtfPresent } from "../../src/bpf/engine.ts";
import { resolveRulePath, setBtrfsIdentity } from "../../src/bpf/path_rule.ts";
import { inodeKey, kernelDev, ruleValue } from "../../src/bpf/rule_codec.ts";
import { UsageError } from "../../src/errors.ts";
import type { FileBlockRecord } from "../../src/events/decode.ts";
import { compilePolicy } from "../../src/policy/compile.ts";
import { parsePolicy } from "../../src/policy/parse.ts";
import { type Engine, loadEngine } from "../lib/engine.ts";
import { AGENT, Agent, agentEnv, cleanupAgent } from "../lib/agent.ts";
import { eventually, ROOT, run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const BASE = "/tmp/aegis-fs";
const RULE_ID = 1919;
const DENY = ruleValue(RULE_ID, AEGIS_RULE_DENY, AEGIS_RT_INODE);
const PROTECT = ruleValue(RULE_ID, AEGIS_RULE_PROTECT, AEGIS_RT_INODE);
const BREAK = Deno.env.get("AEGIS_VM_BREAK_FS") ?? "";

/** The rule identity of `path`: the agent's resolver (or stat() for the negative control). */
function identity(path: string): { dev: number; ino: number } {
  if (BREAK === "stat") {
    const st = Deno.statSync(path);
    return { dev: kernelDev(st.dev), ino: st.ino! };
  }
  const r = resolveRulePath(path);
  if (r.status !== "resolved") throw new Error(`${path}: ${r.reason}`);
  return r;
}

async function sh(cmd: string, ...args: string[]): Promise<string> {
  const r = await run(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** Open through an alias Deno cannot express (tests/vm/aliases.py). */
async function tryAlias(kind: "opath-reopen" | "openat2", path: string): Promise<string> {
  const r = await run("/usr/bin/python3", [`${ROOT}/tests/vm/aliases.py`, kind, path]);
  return r.stdout.trim();
}

function tryExec(path: string): string {
  try {
    const r = new Deno.Command(path, { stdout: "null", stderr: "null" }).outputSync();
    return r.success ? "ok" : `exit ${r.code}`;
  } catch (e) {
    return e instanceof Deno.errors.PermissionDenied ? "EPERM/EACCES" : String(e);
  }
}

function tryOpenWrite(path: string): string {
  try {
    Deno.openSync(path, { write: true }).close();
    return "ok";
  } catch (e) {
    return e instanceof Deno.errors.PermissionDenied ? "EPERM/EACCES" : String(e);
  }
}

/** "denied" when `f` throws PermissionDenied (overlayfs refused a copy-up), else "done". */
function deniedOrDone(f: () => void): "denied" | "done" {
  try {
    f();
    return "done";
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied) return "denied";
    throw e;
  }
}

/** A file system under test: files are made in `dir`; `lower*` are overlay lower files. */
interface Target {
  name: string;
  dir: string;
  /** an existing lower-layer file (and a lower binary) on an overlay, with a sibling dir */
  lower?: { file: string; bin?: string };
}

/** Loop devices, file systems and overlays; returns the targets and the refused files. */
async function setup(): Promise<
  { targets: Target[]; btrfs: string; refused: [string, RegExp][] }
> {
  await sh(
    "bash",
    `${ROOT}/scripts/vm/load_modules.sh`,
    "loop",
    "crc32c_generic",
    "ext4",
    "xfs",
    "btrfs",
  );
  Deno.mkdirSync(BASE, { recursive: true });
  const mk = async (fs: string, size: string, mkfs: string[]) => {
    const img = `${BASE}/${fs}.img`, mnt = `${BASE}/${fs}`;
    await sh("truncate", "-s", size, img);
    await sh(mkfs[0], ...mkfs.slice(1), img);
    Deno.mkdirSync(mnt);
    await sh("mount", "-o", "loop", img, mnt);
    return mnt;
  };
  const ext4 = await mk("ext4", "64M", ["mkfs.ext4", "-q", "-F"]);
  const xfs = await mk("xfs", "320M", ["mkfs.xfs", "-q", "-f"]); // xfsprogs 6.1: 300 MiB minimum
  const btrfs = await mk("btrfs", "128M", ["mkfs.btrfs", "-q", "-f"]);
  for (const d of [`${ext4}/files`, `${xfs}/files`]) Deno.mkdirSync(d);

  // an overlay with its lower layer on ext4 and its upper layer on xfs
  const lower = `${ext4}/lower`, ovl = `${BASE}/ovl`;
  Deno.mkdirSync(`${lower}/files`, { recursive: true });
  Deno.writeTextFileSync(`${lower}/files/lower-secret`, "lower secret");
  Deno.copyFileSync("/usr/bin/true", `${lower}/files/lower-true`);
  Deno.chmodSync(`${lower}/files/lower-true`, 0o755);
  for (const d of [`${xfs}/upper`, `${xfs}/work`, ovl]) Deno.mkdirSync(d);
  await sh(
    "mount",
    "-t",
    "overlay",
    "ovl",
    "-o",
    `lowerdir=${lower},upperdir=${xfs}/upper,workdir=${xfs}/work,xino=off`,
    ovl,
  );
  // the same lower under xino=on: lower inode numbers carry the layer in bit 63
  for (const d of [`${BASE}/xu`, `${BASE}/xw`, `${BASE}/xino`]) Deno.mkdirSync(d);
  await sh(
    "mount",
    "-t",
    "overlay",
    "xino",
    "-o",
    `lowerdir=${lower},upperdir=${BASE}/xu,workdir=${BASE}/xw,xino=on`,
    `${BASE}/xino`,
  );

  // btrfs: top level, a subvolume and its snapshot (same inode numbers as the subvolume)
  Deno.mkdirSync(`${btrfs}/files`);
  await sh("btrfs", "-q", "subvolume", "create", `${btrfs}/sub`);
  Deno.mkdirSync(`${btrfs}/sub/files`);
  Deno.writeTextFileSync(`${btrfs}/sub/files/twin`, "the same inode number in both");
  await sh("btrfs", "-q", "subvolume", "snapshot", `${btrfs}/sub`, `${btrfs}/snap`);

  // the guest's root overlay: /srv is made in its tmpfs upper layer; a
  // Debian base file is in its 9p lower layer (reads only: the host is
  // untouched). Not a repository file: a checkout under /tmp or /run is a
  // bind mount in the guest (scripts/vm/init.sh), and a hard link from there
  // into /srv would fail with EXDEV before any rule is asked.
  const rootDir = "/srv/aegis-fs";
  Deno.mkdirSync(rootDir, { recursive: true });
  const rootLower = "/usr/share/common-licenses/GPL-3";
  if (!Deno.statSync(rootLower).isFile) throw new Error(`${rootLower} is not a file`);
  const results = Deno.env.get("AEGIS_VM_RESULTS") ?? "/results";
  Deno.writeTextFileSync(`${results}/fs-9p-probe`, "9p");

  return {
    targets: [
      { name: "ext4 (loop)", dir: `${ext4}/files` },
      { name: "xfs (loop)", dir: `${xfs}/files` },
      {
        name: "overlay ext4 lower + xfs upper",
        dir: `${ovl}/files`,
        lower: { file: `${ovl}/files/lower-secret`, bin: `${ovl}/files/lower-true` },
      },
      { name: "root overlay (9p lower, tmpfs upper)", dir: rootDir, lower: { file: rootLower } },
      { name: "btrfs top level", dir: `${btrfs}/files` },
      { name: "btrfs subvolume", dir: `${btrfs}/sub/files` },
      { name: "btrfs snapshot", dir: `${btrfs}/snap/files` },
    ],
    btrfs,
    refused: [
      [`${results}/fs-9p-probe`, /it is on 9p .*network file system/],
      [`${BASE}/xino/files/lower-secret`, /does not fit in 53 bits \(overlay with xino=on\)/],
    ],
  };
}

async function teardown(): Promise<void> {
  for (const m of ["xino", "ovl", "btrfs", "xfs", "ext4"]) await run("umount", [`${BASE}/${m}`]);
  await run("rm", ["-rf", BASE, "/srv/aegis-fs"]);
  await run("rm", ["-f", `${Deno.env.get("AEGIS_VM_RESULTS") ?? "/results"}/fs-9p-probe`]);
}

function fileBlocks(eng: Engine): FileBlockRecord[] {
  return eng.records().filter((r) => r.kind === "file_block") as FileBlockRecord[];
}

/** Deny `denied` through its resolved identity and prove every alias denied. */
async function aliasSet(
  eng: Engine,
  dir: string,
  denied: string,
  isLower: boolean,
): Promise<void> {
  const deny = eng.map("aegis_deny_inode");
  const r = identity(denied);
  const key = inodeKey(r.dev, r.ino, 0);
  strictEqual(tryOpen(denied), "ok", "opens before the rule");
  fileBlocks(eng);
  deny.update(key, DENY);
  try {
    strictEqual(tryOpen(denied), "EPERM/EACCES", "denied by the rule");
    const blk = fileBlocks(eng).find((b) => b.ino === r.ino && b.dev === r.dev);
    ok(blk, `a block record for ${r.dev >>> 20}:${r.dev & 0xfffff}/${r.ino}`);
    strictEqual(blk.action, AEGIS_ACT_BLOCK);
    strictEqual(blk.ruleId, RULE_ID);

    Deno.symlinkSync(denied, `${dir}/symlink`);
    strictEqual(tryOpen(`${dir}/symlink`), "EPERM/EACCES", "symlink");
    Deno.mkdirSync(`${dir}/sub`);
    const parent = denied.slice(0, denied.lastIndexOf("/"));
    const base = denied.slice(denied.lastIndexOf("/") + 1);
    strictEqual(tryOpen(`${parent}/../${parent.split("/").pop()}/${base}`), "EPERM/EACCES", "..");
    strictEqual(await tryAlias("opath-reopen", denied), "opath-reopen EPERM", "O_PATH reopen");
    strictEqual(await tryAlias("openat2", denied), "openat2 EPERM", "openat2");
    Deno.writeTextFileSync(`${dir}/mountpoint`, "");
    const bind = await run("mount", ["--bind", denied, `${dir}/mountpoint`]);
    strictEqual(bind.code, 0, bind.stderr);
    try {
      strictEqual(tryOpen(`${dir}/mountpoint`), "EPERM/EACCES", "bind mount");
    } finally {
      await run("umount", [`${dir}/mountpoint`]);
    }
    // hard link and rename: a lower file must be copied up first, which is
    // refused for a ruled file (lsm/inode_copy_up); elsewhere they succeed
    // and the new name is denied
    const link = deniedOrDone(() => Deno.linkSync(denied, `${dir}/hardlink`));
    strictEqual(link, isLower ? "denied" : "done", "hard link made (or copy-up refused)");
    if (link === "done") strictEqual(tryOpen(`${dir}/hardlink`), "EPERM/EACCES", "hard link");
    const mv = deniedOrDone(() => Deno.renameSync(denied, `${dir}/renamed`));
    strictEqual(mv, isLower ? "denied" : "done", "renamed (or copy-up refused)");
    if (mv === "done") {
      strictEqual(tryOpen(`${dir}/renamed`), "EPERM/EACCES", "renamed");
      Deno.renameSync(`${dir}/renamed`, denied);
    }
    if (isLower) {
      // a metadata change copies a lower file up without an open: refused,
      // and after the caches are dropped the rule still holds
      const touch = await run("touch", ["-c", denied]);
      ok(touch.code !== 0 && /not permitted/.test(touch.stderr), `touch: ${touch.stderr}`);
      Deno.writeTextFileSync("/proc/sys/vm/drop_caches", "3");
      strictEqual(
        tryOpen(denied),
        "EPERM/EACCES",
        "denied after a refused copy-up and a cache drop",
      );
      strictEqual(tryOpenWrite(denied), "EPERM/EACCES", "open for write (no copy-up)");
      strictEqual(tryOpen(denied), "EPERM/EACCES", "still denied");
    }
  } finally {
    deny.delete(key);
    for (const n of ["symlink", "hardlink", "mountpoint", "renamed"]) {
      try {
        Deno.removeSync(`${dir}/${n}`);
      } catch { /* not made */ }
    }
    Deno.removeSync(`${dir}/sub`, { recursive: true });
  }
  strictEqual(tryOpen(denied), "ok", "opens again without the rule");
}

/** Deny an executable through its resolved identity: exec refused, with a record. */
function execDenied(eng: Engine, bin: string): void {
  const deny = eng.map("aegis_deny_inode");
  const r = identity(bin);
  const key = inodeKey(r.dev, r.ino, 0);
  strictEqual(tryExec(bin), "ok", "runs before the rule");
  fileBlocks(eng);
  deny.update(key, DENY);
  try {
    strictEqual(tryExec(bin), "EPERM/EACCES", "exec denied");
    ok(fileBlocks(eng).some((b) => b.ino === r.ino && b.dev === r.dev), "a block record");
  } finally {
    deny.delete(key);
  }
  strictEqual(tryExec(bin), "ok", "runs again without the rule");
}

/**
 * A protect rule on `file` through its resolved identity: this test process is not a verified
 * task (the verified-state programs are not loaded here), so it is refused with a record.
 */
function protectDenied(eng: Engine, file: string): void {
  const rules = eng.map("aegis_deny_inode");
  const r = identity(file);
  const key = inodeKey(r.dev, r.ino, 0);
  fileBlocks(eng);
  rules.update(key, PROTECT);
  try {
    strictEqual(tryOpen(file), "EPERM/EACCES", "protected: an unverified task is refused");
    ok(
      fileBlocks(eng).some((b) =>
        b.ino === r.ino && b.dev === r.dev && b.ruleFlags === AEGIS_RULE_PROTECT
      ),
      "a protect block record",
    );
  } finally {
    rules.delete(key);
  }
  strictEqual(tryOpen(file), "ok", "opens again without the rule");
}

Deno.test({
  name: "file rules on ext4, xfs, overlayfs (lower, upper, copy-up) and the overlay root; " +
    "btrfs top level, subvolume and snapshot; 9p and xino=on lower files refused at apply time",
  ignore: !LSM_ON,
  fn: async (t) => {
    const { targets, btrfs, refused } = await setup();
    try {
      await using eng = await loadEngine((s, p) =>
        s === "lsm/file_open" || p === "aegis_bprm_check" ||
        (s === "lsm/inode_copy_up" && BREAK !== "copyup")
      );
      strictEqual(
        eng.attach.filter((a) => a.status === "attached").length,
        BREAK === "copyup" ? 2 : 3,
      );
      // the btrfs module (loaded above) gave its BTF, so libbpf relocated the programs'
      // btrfs types; Engine.start records that (AEGIS_CFG_BTRFS_IDENTITY), loadEngine does not
      ok(btrfsBtfPresent(), "the btrfs module's BTF (/sys/kernel/btf/btrfs) is there");
      setBtrfsIdentity(true);
      eng.setPolicy(AEGIS_POL_FILE_RULES);
      for (const tg of targets) {
        await t.step(tg.name, async () => {
          const denied = `${tg.dir}/secret`, bin = `${tg.dir}/true`;
          Deno.writeTextFileSync(denied, "secret");
          Deno.writeTextFileSync(`${tg.dir}/other`, "public");
          Deno.copyFileSync("/usr/bin/true", bin);
          Deno.chmodSync(bin, 0o755);
          await aliasSet(eng, tg.dir, denied, false);
          execDenied(eng, bin);
          protectDenied(eng, denied);
          if (tg.lower) {
            await aliasSet(eng, tg.dir, tg.lower.file, true);
            if (tg.lower.bin) execDenied(eng, tg.lower.bin);
          }
          strictEqual(tryOpen(`${tg.dir}/other`), "ok", "another file was never denied");
        });
      }
      await t.step("btrfs: a subvolume and its snapshot are told apart (same inode number)", () => {
        const deny = eng.map("aegis_deny_inode");
        const sub = `${btrfs}/sub/files/twin`, snap = `${btrfs}/snap/files/twin`;
        strictEqual(Deno.statSync(sub).ino, Deno.statSync(snap).ino, "the same inode number");
        const a = identity(sub), b = identity(snap);
        ok(a.dev !== b.dev, `two identities: ${a.dev} vs ${b.dev}`);
        const key = inodeKey(a.dev, a.ino, 0);
        deny.update(key, DENY);
        try {
          strictEqual(tryOpen(sub), "EPERM/EACCES", "the subvolume's file is denied");
          strictEqual(tryOpen(snap), "ok", "the snapshot's copy is another file");
          ok(
            fileBlocks(eng).some((r) => r.dev === a.dev && r.ino === a.ino),
            "the block record carries the subvolume's device, as stat() shows it",
          );
        } finally {
          deny.delete(key);
        }
      });
      await t.step(
        "the agent: a rule on every file system applied, proven, kept over SIGKILL and restart",
        async () => {
          // end to end: Engine.start records the btrfs identity, the daemon resolves each path
          // as the hooks key it, and its rule verification opens the files from outside its
          // cgroup; the pinned rules keep denying while no agent runs, and a new agent
          // re-adopts them and proves them again
          const e = agentEnv();
          const files = [
            ...targets.flatMap((tg) => [`${tg.dir}/secret`, ...(tg.lower ? [tg.lower.file] : [])]),
            `${btrfs}/sub/files/twin`,
          ];
          const snap = `${btrfs}/snap/files/twin`;
          const n = files.length;
          Deno.writeTextFileSync(
            `${e.dir}/fs.pol`,
            `version=1\n[deny_path]\n${files.join("\n")}\n`,
          );
          const allDenied = (when: string) => {
            for (const f of files) strictEqual(tryOpen(f), "EPERM/EACCES", `${f} (${when})`);
          };
          let a: Agent | null = null;
          try {
            a = new Agent([], e.env);
            await a.ready();
            const r = await run(AGENT, ["policy", "apply", `${e.dir}/fs.pol`], e.env);
            strictEqual(r.code, 0, r.stderr + r.stdout);
            match(
              r.stdout,
              new RegExp(`verified: ${n} of ${n} file rule\\(s\\) tried were denied by the kernel`),
            );
            allDenied("applied");
            strictEqual(tryOpen(snap), "ok", "the snapshot's copy is not ruled");
            await a.stop("SIGKILL");
            allDenied("pinned, no agent running");
            a = new Agent([], e.env);
            await a.ready();
            match(a.err, /re-adopted/);
            await a.waitFor(
              () =>
                new RegExp(`rule verification: ${n} of ${n} rule\\(s\\) tried: ${n} denied, 0 open`)
                  .test(a!.err),
              "the re-adopted rules verified",
              60_000,
            );
            allDenied("re-adopted");
            await a.stop();
            a = new Agent([], e.env);
            await a.ready();
            allDenied("restarted");
          } finally {
            await cleanupAgent(a, e);
          }
          // the kernel frees unpinned links from a work queue: the detach follows a moment later
          for (const f of files) {
            strictEqual(await eventually(() => tryOpen(f)), "ok", `${f}: the agent removed`);
          }
        },
      );
      await t.step("btrfs is refused when the loaded programs cannot tell subvolumes apart", () => {
        setBtrfsIdentity(false); // as after a load without the btrfs module's BTF
        try {
          throws(
            () => resolveRulePath(`${btrfs}/files/secret`),
            /it is on btrfs .*restart the agent once the btrfs module is loaded/,
          );
        } finally {
          setBtrfsIdentity(true);
        }
      });
      await t.step("unsupported file systems are refused, naming the path and the fs", () => {
        for (const [path, why] of refused) {
          throws(
            () => resolveRulePath(path),
            (e: Error) =>
              e instanceof UsageError && e.message.includes(JSON.stringify(path)) &&
              why.test(e.message),
            path,
          );
          // what `policy apply` compiles: the whole policy is refused
          const parsed = parsePolicy(`version=1\n[deny_path]\n${path}\n`, "fs.pol");
          ok(parsed.policy, JSON.stringify(parsed.errors));
          throws(
            () =>
              compilePolicy(parsed.policy!, {
                resolvePath: (p) => resolveRulePath(p),
                resolveCgroup: () => null,
              }),
            why,
          );
        }
      });
      await t.step("policy apply (CLI, --dry-run) refuses a 9p file, naming it", async () => {
        const [path9p] = refused.find(([p]) => p.endsWith("/fs-9p-probe"))!;
        const pol = `${BASE}/refused.pol`;
        Deno.writeTextFileSync(
          pol,
          `version=1\n[deny_path]\n${targets[0].dir}/secret\n${path9p}\n`,
        );
        const r = await run(AGENT, ["policy", "apply", "--dry-run", pol]);
        ok(r.code !== 0, `exit ${r.code}: ${r.stdout}`);
        ok(
          r.stderr.includes(`Cannot enforce a rule on ${JSON.stringify(path9p)}: it is on 9p`),
          r.stderr,
        );
      });
    } finally {
      await teardown();
    }
  },
});
