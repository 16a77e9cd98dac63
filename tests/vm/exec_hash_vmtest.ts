/**
 * VM tier: exec identity by content (deny_binary_hash; bpf/exec_hash.bpf.c,
 * the sleepable lsm.s/bprm_check_security program and bpf_ima_file_hash).
 *
 * lsm-on cells:
 *  1. engine level (the program alone, rules written into its maps): with
 *     the sha256 of a static test binary denied, the original (overlay
 *     root), a copy on tmpfs, a hard link, a renamed copy, a memfd exec
 *     (execveat AT_EMPTY_PATH) and a script whose interpreter has that
 *     content all fail with EPERM and a block record naming the digest; a
 *     file open for writing cannot be executed; a different binary runs; audit mode reports and
 *     allows; the agent's cgroup is exempt; without the policy switch
 *     nothing is hashed; a file changed after a deny runs (new content), a
 *     file overwritten with the denied content is denied (no stale
 *     identity, with no IMA policy loaded: IMA hashes on every call).
 *  1b. engine level, the routes around exec: `ld.so COPY` (the kernel execs
 *     only ld.so; ld.so maps the program) and mmap(PROT_EXEC) of the file
 *     are refused (EPERM) with a record naming the hook, the digest and the
 *     file; a readable mapping and another content are not; audit mode
 *     reports and allows. mprotect(PROT_EXEC) of a readable mapping of the
 *     file is refused too (it was never verified: fail closed; the cases of
 *     the verified-file cache are in exec_mprotect_vmtest.ts).
 *  1c. engine level, allowlist mode (AEGIS_POL_EXEC_ALLOWLIST, entries with
 *     AEGIS_RULE_ALLOW in aegis_deny_hash): the listed static target and a
 *     copy of it run; an unlisted binary gets EPERM and a record with
 *     rule_id 0 and rule_flags AEGIS_RULE_UNLISTED; a content listed with
 *     ALLOW and DENY is denied by the deny rule; audit mode allows and
 *     reports; the agent's cgroup is exempt; without the switch everything
 *     runs. While the switch is on every exec of the guest is checked, so
 *     the test lists its own helper (the only thing it spawns).
 *  2. agent level (one start): a version=3 policy with [deny_binary_hash]
 *     through `run --policy`: the copy is denied, the event line carries
 *     sha256 / rule_type "hash", the capability report says
 *     exec_identity.source "ima" and no blocker; an executable mapping of
 *     the copy is refused too (the daemon attaches lsm.s/mmap_file).
 * Where the kernel gives no SHA-256 (identity unknown), test 1 says so and
 * shows the counter that proves it, and test 2 requires the blocker
 * EXEC_IDENTITY_UNAVAILABLE instead of the deny.
 * lsm-off cells: the program loads and attaches, and denies nothing (deny
 * list or allowlist).
 */
import { deepStrictEqual, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_BLOCK,
  AEGIS_CFG_AGENT_CGID,
  AEGIS_CNT_HASH_CACHED,
  AEGIS_CNT_HASH_UNKNOWN,
  AEGIS_HOOK_BPRM_HASH,
  AEGIS_HOOK_MMAP_HASH,
  AEGIS_HOOK_MPROTECT_HASH,
  AEGIS_POL_EXEC_ALLOWLIST,
  AEGIS_POL_EXEC_HASH,
  AEGIS_RT_HASH,
  AEGIS_RULE_ALLOW,
  AEGIS_RULE_DENY,
  AEGIS_RULE_UNLISTED,
  AEGIS_RULE_UNVERIFIED,
} from "../../src/bpf/abi_gen.ts";
import { hashKey, ruleValue } from "../../src/bpf/rule_codec.ts";
import { CapabilitiesReport } from "../../src/posture/report.ts";
import { type Engine, loadEngine } from "../lib/engine.ts";
import {
  type ExecWork,
  execWork,
  gcc,
  hashBlocks,
  ownCgroupId,
  sha256,
  wordProgram,
} from "../lib/exec_hash_testing.ts";
import { viaLoader } from "../lib/exec_vm.ts";
import { Agent, agentEnv, cleanupAgent, httpGet } from "../lib/agent.ts";
import { daemonRequest } from "../../src/control/client.ts";
import { encodeBase64 } from "../../src/util/bytes.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const KERNEL = Deno.env.get("AEGIS_VM_KERNEL") ?? "?";
const SECTION = "lsm.s/bprm_check_security";
/** The mapping programs (bpf/exec_hash.bpf.c): sleepable mmap_file, non-sleepable mprotect. */
const MAP_SECTIONS = ["lsm.s/mmap_file", "lsm/file_mprotect"];

/* `exec PATH`: execv; `memfd PATH`: the file's bytes into a memfd, then
 * execveat(fd, "", AT_EMPTY_PATH). Prints the errno name when exec fails. */
const HELPER_SRC = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static int fail(void)
{
	printf("%s\n", strerrorname_np(errno));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "exec")) {
		execv(argv[2], argv + 2);
		return fail();
	}
	if (argc >= 3 && !strcmp(argv[1], "memfd")) {
		char buf[65536];
		ssize_t n;
		int src = open(argv[2], O_RDONLY | O_CLOEXEC);
		int fd = memfd_create("aegis-memfd", MFD_CLOEXEC);
		char *args[] = { argv[2], 0 };

		if (src < 0 || fd < 0)
			return fail();
		while ((n = read(src, buf, sizeof(buf))) > 0)
			if (write(fd, buf, n) != n)
				return fail();
		syscall(SYS_execveat, fd, "", args, environ, AT_EMPTY_PATH);
		return fail();
	}
	if (argc >= 4 && !strcmp(argv[1], "loop")) {
		/* N fork+exec+wait of PATH (its output discarded): ns per exec */
		int n = atoi(argv[3]), i, st;
		struct timespec a, b;

		clock_gettime(CLOCK_MONOTONIC, &a);
		for (i = 0; i < n; i++) {
			pid_t pid = fork();
			if (pid == 0) {
				int null = open("/dev/null", O_WRONLY);
				dup2(null, 1);
				execl(argv[2], argv[2], (char *)0);
				_exit(127);
			}
			waitpid(pid, &st, 0);
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
				return fail();
		}
		clock_gettime(CLOCK_MONOTONIC, &b);
		printf("%lld\n", ((b.tv_sec - a.tv_sec) * 1000000000LL + b.tv_nsec - a.tv_nsec) / n);
		return 0;
	}
	if (argc >= 3 && (!strcmp(argv[1], "mmapx") || !strcmp(argv[1], "mprotect"))) {
		/* map the file's first page executable: at once (mmapx), or
		 * readable first and executable after (mprotect) */
		int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
		int exec_now = !strcmp(argv[1], "mmapx");
		void *p;

		if (fd < 0)
			return fail();
		p = mmap(0, 4096, PROT_READ | (exec_now ? PROT_EXEC : 0), MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED)
			return fail();
		if (!exec_now && mprotect(p, 4096, PROT_READ | PROT_EXEC))
			return fail();
		puts("mapped");
		return 0;
	}
	fprintf(stderr, "usage: aegis-hx exec PATH|memfd PATH|loop PATH N|mmapx PATH|mprotect PATH\n");
	return 2;
}
`;
const HELPER = "aegis-hx";

interface Work extends ExecWork {
  /** a dynamically linked binary (ld.so can run it), and its digest */
  dyn: string;
  dynSha: string;
}

let work: Work | undefined;

async function workDirs(): Promise<Work> {
  if (work) return work;
  const base = await execWork("aegis-eh-", HELPER, HELPER_SRC);
  gcc(wordProgram("loader-ran"), `${base.root}/dyn`);
  work = { ...base, dyn: `${base.root}/dyn`, dynSha: await sha256(`${base.root}/dyn`) };
  return work;
}

/** "ok" when the program ran (printed its word), else the errno name. */
function tryExec(mode: "exec" | "memfd", path: string, word = "denied-ran"): string {
  const w = work!;
  const o = new Deno.Command(w.helper, { args: [mode, path] }).outputSync();
  const out = new TextDecoder().decode(o.stdout).trim();
  const err = new TextDecoder().decode(o.stderr).trim();
  ok(o.code !== 2 && !err, `helper ${mode} ${path}: exit ${o.code}, stderr ${err}`);
  return out === word ? "ok" : out;
}

/** "ok" when the helper mapped the file executable, else the errno name. */
function tryMap(mode: "mmapx" | "mprotect", path: string): string {
  const o = new Deno.Command(work!.helper, { args: [mode, path] }).outputSync();
  const out = new TextDecoder().decode(o.stdout).trim();
  ok(o.code !== 2, `helper ${mode} ${path}: ${new TextDecoder().decode(o.stderr)}`);
  return out === "mapped" ? "ok" : out;
}

function unknownCount(eng: Engine): bigint {
  return eng.map("aegis_counters").sumU64(AEGIS_CNT_HASH_UNKNOWN);
}

function say(msg: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`exec_hash (${KERNEL}): ${msg}\n`));
}

/** Does this kernel give the SHA-256 of an executed file? Set by test 1. */
let identity: "ima" | "none" | undefined;

Deno.test({
  name: "deny_binary_hash: copies, links, new names, tmpfs and memfd are denied by content",
  ignore: !LSM_ON,
  fn: async () => {
    const w = await workDirs();
    await using eng = await loadEngine((s) => s === SECTION);
    const a = eng.attach.find((x) => x.section === SECTION);
    strictEqual(a?.status, "attached", JSON.stringify(eng.attach));
    const rules = eng.map("aegis_deny_hash");
    const rule = ruleValue(7, AEGIS_RULE_DENY, AEGIS_RT_HASH);

    // a rule without the policy switch: nothing is hashed, nothing denied
    rules.update(hashKey(w.sha, 0), rule);
    eng.setPolicy(0);
    const u0 = unknownCount(eng);
    strictEqual(tryExec("exec", w.bin), "ok", "switch off: runs");
    deepStrictEqual(hashBlocks(eng.records()), []);
    strictEqual(unknownCount(eng), u0, "switch off: not hashed");

    eng.setPolicy(AEGIS_POL_EXEC_HASH);
    const first = tryExec("exec", w.bin);
    if (first === "ok") {
      // no identity: the helper gave no SHA-256 (counted), the exec ran
      ok(unknownCount(eng) > u0, "a run with the switch on is a match or an unknown identity");
      identity = "none";
      say(
        "the kernel gave no SHA-256 (AEGIS_CNT_HASH_UNKNOWN counted); the agent test " +
          "must report EXEC_IDENTITY_UNAVAILABLE",
      );
      return;
    }
    identity = "ima";
    strictEqual(first, "EPERM", "the original is denied");
    const st = Deno.statSync(w.bin);
    const check = (path: string, action: number, ino?: number) => {
      const recs = hashBlocks(eng.records());
      strictEqual(recs.length, 1, `${path}: one record ${JSON.stringify(recs)}`);
      const r = recs[0];
      strictEqual(r.action, action, path);
      strictEqual(r.hook, AEGIS_HOOK_BPRM_HASH);
      strictEqual(r.sha256, w.sha, "the record names the digest");
      strictEqual(r.ruleId, 7);
      strictEqual(r.ruleFlags, AEGIS_RULE_DENY);
      strictEqual(r.path, path);
      strictEqual(r.comm, HELPER, "the process that called exec");
      // (tmpfs files only: an overlayfs file's record names the kernel's inode)
      if (ino !== undefined) strictEqual(r.ino, ino, `${path}: the executed file's inode`);
    };
    check(w.bin, AEGIS_ACT_BLOCK);
    strictEqual(Number(unknownCount(eng)), Number(u0), "a known identity is not counted unknown");

    // a copy on tmpfs: a new inode on another file system
    const copy = `${w.tmp}/copy`;
    Deno.copyFileSync(w.bin, copy);
    const cst = Deno.statSync(copy);
    ok(cst.dev !== st.dev, "another file system");
    strictEqual(tryExec("exec", copy), "EPERM", "tmpfs copy");
    check(copy, AEGIS_ACT_BLOCK, cst.ino!);
    // a hard link, and a renamed copy on the root
    Deno.linkSync(w.bin, `${w.root}/link`);
    strictEqual(tryExec("exec", `${w.root}/link`), "EPERM", "hard link");
    check(`${w.root}/link`, AEGIS_ACT_BLOCK);
    Deno.copyFileSync(w.bin, `${w.root}/tmpname`);
    Deno.renameSync(`${w.root}/tmpname`, `${w.root}/innocent-tool`);
    strictEqual(tryExec("exec", `${w.root}/innocent-tool`), "EPERM", "renamed copy");
    check(`${w.root}/innocent-tool`, AEGIS_ACT_BLOCK);
    // memfd: no path at all (bprm->filename is /dev/fd/N)
    strictEqual(tryExec("memfd", w.bin), "EPERM", "memfd execveat");
    const m = hashBlocks(eng.records());
    strictEqual(m.length, 1, JSON.stringify(m));
    strictEqual(m[0].sha256, w.sha);
    ok(/^\/dev\/fd\/\d+$/.test(m[0].path), `memfd exec path: ${m[0].path}`);

    // a script whose interpreter has the denied content: the hook's second
    // pass (the interpreter's file) is denied
    const script = `${w.tmp}/script`;
    Deno.writeTextFileSync(script, `#!${copy}\n`);
    Deno.chmodSync(script, 0o755);
    strictEqual(tryExec("exec", script), "EPERM", "script with a denied interpreter");
    const sc = hashBlocks(eng.records());
    strictEqual(sc.length, 1, JSON.stringify(sc));
    strictEqual(sc[0].sha256, w.sha);
    strictEqual(sc[0].ino, cst.ino, "the interpreter's inode");

    // a different binary still runs, with no record
    strictEqual(tryExec("exec", w.other, "other-ran"), "ok", "a different binary");
    deepStrictEqual(hashBlocks(eng.records()), []);

    // audit mode: allowed, reported
    eng.setAudit(true);
    try {
      strictEqual(tryExec("exec", copy), "ok", "audit mode allows");
      check(copy, AEGIS_ACT_AUDIT, cst.ino!);
    } finally {
      eng.setAudit(false);
    }
    // the agent's own cgroup is exempt, as on every exec rule
    const cfg = eng.map("aegis_config");
    cfg.setU64(AEGIS_CFG_AGENT_CGID, ownCgroupId());
    try {
      strictEqual(tryExec("exec", copy), "ok", "the agent's cgroup is exempt");
      deepStrictEqual(hashBlocks(eng.records()), []);
    } finally {
      cfg.setU64(AEGIS_CFG_AGENT_CGID, 0n);
    }

    // no stale identity: a file cannot change during its exec (open for
    // writing: ETXTBSY), a changed file has a new content, and a file given
    // the denied content is denied (the same inode that ran before)
    // (kernels that dropped the write lock at exec let it reach the hook: EPERM)
    {
      using writer = Deno.openSync(copy, { write: true });
      const busy = tryExec("exec", copy);
      ok(busy === "ETXTBSY" || busy === "EPERM", `exec of a file open for writing: ${busy}`);
      ok(writer.statSync().isFile);
      say(`exec of a file open for writing: ${busy}`);
      strictEqual(hashBlocks(eng.records()).length, busy === "EPERM" ? 1 : 0);
    }
    Deno.writeFileSync(copy, new Uint8Array([0]), { append: true });
    strictEqual(tryExec("exec", copy), "ok", "changed after the deny: new content, runs");
    deepStrictEqual(hashBlocks(eng.records()), []);
    const victim = `${w.tmp}/victim`;
    Deno.copyFileSync(w.other, victim);
    strictEqual(tryExec("exec", victim, "other-ran"), "ok", "before the overwrite");
    const vIno = Deno.statSync(victim).ino!;
    Deno.writeFileSync(victim, Deno.readFileSync(w.bin));
    strictEqual(Deno.statSync(victim).ino, vIno, "same inode");
    strictEqual(tryExec("exec", victim), "EPERM", "overwritten with the denied content");
    check(victim, AEGIS_ACT_BLOCK, vIno);

    // the verified-file cache (aegis_hash_verified): a content hashed and
    // allowed is not hashed again while the file is unchanged, under this
    // policy; a new policy hashes it again, and a deny added there applies
    const cached = () => eng.map("aegis_counters").sumU64(AEGIS_CNT_HASH_CACHED);
    const seen = `${w.tmp}/seen`;
    Deno.copyFileSync(w.other, seen);
    let c0 = cached();
    strictEqual(tryExec("exec", seen, "other-ran"), "ok", "a new file: hashed, allowed");
    const hits1 = cached() - c0; // the helper's own exec may be a hit too
    c0 = cached();
    strictEqual(tryExec("exec", seen, "other-ran"), "ok", "the same file again");
    strictEqual(cached() - c0, hits1 + 1n, "the second exec of the unchanged file is a cache hit");
    deepStrictEqual(hashBlocks(eng.records()), []);
    const otherSha = await sha256(w.other);
    rules.update(hashKey(otherSha, 0), ruleValue(13, AEGIS_RULE_DENY, AEGIS_RT_HASH));
    eng.setPolicy(AEGIS_POL_EXEC_HASH); // as an apply: a new hash epoch
    strictEqual(tryExec("exec", seen), "EPERM", "verified under the old policy, denied by the new");
    ok(rules.delete(hashKey(otherSha, 0)));
    eng.setPolicy(AEGIS_POL_EXEC_HASH);
    deepStrictEqual(hashBlocks(eng.records()).map((r) => [r.ruleId, r.path]), [[13, seen]]);

    // cost (printed, not asserted; TCG): exec of a binary that is not denied,
    // without the switch (no hash) and with it (IMA hashes the whole file)
    const perExec = (): number => {
      const o = new Deno.Command(w.helper, { args: ["loop", w.other, "40"] }).outputSync();
      strictEqual(o.code, 0, new TextDecoder().decode(o.stdout));
      return Number(new TextDecoder().decode(o.stdout).trim());
    };
    eng.setPolicy(0);
    perExec(); // warm
    const off = perExec();
    eng.setPolicy(AEGIS_POL_EXEC_HASH);
    const on = perExec();
    const size = Deno.statSync(w.other).size;
    say(
      `fork+exec+wait of a ${size}-byte static binary: ${(off / 1e3).toFixed(0)} us without ` +
        `hash rules, ${(on / 1e3).toFixed(0)} us with (x${(on / off).toFixed(2)}, TCG, ` +
        "no IMA policy: the first exec hashes the file, the others find it verified)",
    );
    deepStrictEqual(hashBlocks(eng.records()), []);

    // the rule removed: runs again
    ok(rules.delete(hashKey(w.sha, 0)));
    strictEqual(tryExec("exec", w.bin), "ok", "rule removed");
    deepStrictEqual(hashBlocks(eng.records()), []);
  },
});

Deno.test({
  name: "deny_binary_hash: the loader (ld.so FILE) and mmap(PROT_EXEC) are denied by content",
  ignore: !LSM_ON,
  fn: async () => {
    const w = await workDirs();
    ok(identity, "test 1 ran first and found whether the kernel gives a SHA-256");
    if (identity === "none") {
      say("no SHA-256 from this kernel: the mapping checks cannot match (test 1 says why)");
      return;
    }
    await using eng = await loadEngine((s) => s === SECTION || MAP_SECTIONS.includes(s));
    for (const sec of [SECTION, ...MAP_SECTIONS]) {
      strictEqual(eng.attach.find((x) => x.section === sec)?.status, "attached", sec);
    }
    const rules = eng.map("aegis_deny_hash");
    eng.setPolicy(AEGIS_POL_EXEC_HASH);
    // the controls: without a rule, ld.so runs the copy and both mappings work
    const ldCopy = `${w.tmp}/ld-copy`;
    Deno.copyFileSync(w.dyn, ldCopy);
    const free = viaLoader(ldCopy);
    strictEqual(free.out, "loader-ran", `ld.so runs the file without a rule: ${free.err}`);
    strictEqual(tryMap("mmapx", w.bin), "ok", "mmap PROT_EXEC without a rule");
    strictEqual(tryMap("mprotect", w.bin), "ok", "mprotect PROT_EXEC without a rule");
    deepStrictEqual(hashBlocks(eng.records()), []);

    rules.update(hashKey(w.dynSha, 0), ruleValue(9, AEGIS_RULE_DENY, AEGIS_RT_HASH));
    rules.update(hashKey(w.sha, 0), ruleValue(7, AEGIS_RULE_DENY, AEGIS_RT_HASH));
    // new rules are a new policy (an apply bumps the hash epoch): the copies
    // the controls verified above are hashed again
    eng.setPolicy(AEGIS_POL_EXEC_HASH);
    // exec of the copy: denied at bprm_check, as in test 1
    strictEqual(tryExec("exec", ldCopy, "loader-ran"), "EPERM", "exec of the dynamic copy");
    strictEqual(hashBlocks(eng.records())[0]?.hook, AEGIS_HOOK_BPRM_HASH);
    // ld.so FILE: the kernel runs ld.so (allowed), ld.so maps FILE: denied
    const ld = viaLoader(ldCopy);
    notStrictEqual(ld.code, 0, "ld.so fails to load the denied content");
    ok(!ld.out.includes("loader-ran"), `the program did not run: ${ld.out}`);
    say(`ld.so ${ldCopy}: exit ${ld.code}: ${ld.err}`);
    const lr = hashBlocks(eng.records());
    ok(lr.length >= 1, JSON.stringify(lr));
    for (const r of lr) {
      strictEqual(r.hook, AEGIS_HOOK_MMAP_HASH);
      strictEqual(r.sha256, w.dynSha);
      strictEqual(r.ruleId, 9);
      strictEqual(r.action, AEGIS_ACT_BLOCK);
      strictEqual(r.path, ldCopy, "a mapping's record names the file (bpf_d_path)");
      strictEqual(r.ino, Deno.statSync(ldCopy).ino);
      ok(r.comm.startsWith("ld-linux"), `mapped by ld.so: ${r.comm}`);
    }
    // a hand-made executable mapping of the denied content
    const mapped = `${w.tmp}/mapped`;
    Deno.copyFileSync(w.bin, mapped);
    strictEqual(tryMap("mmapx", mapped), "EPERM", "mmap PROT_EXEC of the denied content");
    const r = hashBlocks(eng.records());
    strictEqual(r.length, 1, JSON.stringify(r));
    strictEqual(r[0].hook, AEGIS_HOOK_MMAP_HASH);
    strictEqual(r[0].sha256, w.sha);
    strictEqual(r[0].path, mapped);
    strictEqual(r[0].comm, HELPER);
    // mprotect(PROT_EXEC) after a readable map: the non-sleepable lsm/file_mprotect cannot
    // hash; the denied content was never verified by a mapping, so it is refused
    // (docs/engine.md, "mprotect(PROT_EXEC)")
    strictEqual(tryMap("mprotect", mapped), "EPERM", "mprotect(PROT_EXEC) after a readable map");
    const mp = hashBlocks(eng.records());
    strictEqual(mp.length, 1, JSON.stringify(mp));
    strictEqual(mp[0].hook, AEGIS_HOOK_MPROTECT_HASH);
    strictEqual(mp[0].sha256, "0".repeat(64), "nothing hashed at mprotect");
    deepStrictEqual([mp[0].ruleId, mp[0].ruleFlags], [0, AEGIS_RULE_UNVERIFIED]);
    strictEqual(mp[0].comm, HELPER);
    // a readable (not executable) mapping of the same file is not an exec
    strictEqual(
      new TextDecoder().decode(Deno.readFileSync(mapped).slice(1, 4)),
      "ELF",
      "reading the denied content stays allowed",
    );
    // another content maps; the helper itself (dynamic: ld.so maps libc
    // executable) keeps running with the switch on
    strictEqual(tryMap("mmapx", w.other), "ok", "another content maps executable");
    deepStrictEqual(hashBlocks(eng.records()), []);
    // audit mode: reported, allowed
    eng.setAudit(true);
    try {
      strictEqual(tryMap("mmapx", mapped), "ok", "audit mode allows the mapping");
      const a = hashBlocks(eng.records());
      strictEqual(a.length, 1, JSON.stringify(a));
      strictEqual(a[0].action, AEGIS_ACT_AUDIT);
    } finally {
      eng.setAudit(false);
    }
    // rules removed: ld.so runs the copy again
    ok(rules.delete(hashKey(w.dynSha, 0)));
    ok(rules.delete(hashKey(w.sha, 0)));
    strictEqual(viaLoader(ldCopy).out, "loader-ran", "rule removed");
    strictEqual(tryMap("mmapx", mapped), "ok", "rule removed: mmap");
    deepStrictEqual(hashBlocks(eng.records()), []);
  },
});

Deno.test({
  name:
    "allow_binary_hash: only listed contents exec; an unlisted one is denied (EPERM, not-on-allowlist record)",
  ignore: !LSM_ON,
  fn: async () => {
    const w = await workDirs();
    ok(identity, "test 1 ran first and found whether the kernel gives a SHA-256");
    await using eng = await loadEngine((s) => s === SECTION);
    strictEqual(eng.attach.find((x) => x.section === SECTION)?.status, "attached");
    const rules = eng.map("aegis_deny_hash");
    const cfg = eng.map("aegis_config");
    const helperSha = await sha256(w.helper);
    const allow = ruleValue(11, AEGIS_RULE_ALLOW, AEGIS_RT_HASH);
    // the helper is the only program this test spawns while the switch is
    // on (Deno.Command execs it directly); the target is what it runs
    rules.update(hashKey(helperSha, 0), allow);
    rules.update(hashKey(w.sha, 0), allow);
    const copy = `${w.tmp}/allow-copy`;
    Deno.copyFileSync(w.bin, copy);
    const otherSha = await sha256(w.other);
    const u0 = unknownCount(eng);
    try {
      eng.setPolicy(AEGIS_POL_EXEC_ALLOWLIST);
      if (identity === "none") {
        // no SHA-256 for any file: even the listed helper is unknown, and
        // denied (fail closed); the record names no digest
        let refused = false;
        try {
          new Deno.Command(w.helper, { args: ["exec", w.bin] }).outputSync();
        } catch (e) {
          refused = e instanceof Deno.errors.PermissionDenied;
        }
        eng.setPolicy(0);
        ok(refused, "an unknown identity is denied under an allowlist");
        ok(unknownCount(eng) > u0, "counted as unknown");
        const r = hashBlocks(eng.records());
        ok(r.length >= 1, JSON.stringify(r));
        strictEqual(r[0].sha256, "0".repeat(64));
        deepStrictEqual([r[0].ruleId, r[0].ruleFlags], [0, AEGIS_RULE_UNLISTED]);
        say("no SHA-256 from this kernel: the allowlist denied the unknown identity");
        return;
      }
      strictEqual(tryExec("exec", w.bin), "ok", "the listed target runs");
      strictEqual(tryExec("exec", copy), "ok", "a copy of the listed content runs");
      deepStrictEqual(hashBlocks(eng.records()), []);

      // an unlisted content: denied, the record says "not on the allowlist"
      const unlisted = (action: number) => {
        const r = hashBlocks(eng.records());
        strictEqual(r.length, 1, JSON.stringify(r));
        strictEqual(r[0].action, action);
        strictEqual(r[0].hook, AEGIS_HOOK_BPRM_HASH);
        strictEqual(r[0].ruleId, 0, "no rule: the content is not listed");
        strictEqual(r[0].ruleFlags, AEGIS_RULE_UNLISTED);
        strictEqual(r[0].sha256, otherSha, "the record names the unlisted digest");
        strictEqual(r[0].path, w.other);
        strictEqual(r[0].comm, HELPER);
      };
      strictEqual(tryExec("exec", w.other, "other-ran"), "EPERM", "unlisted content");
      unlisted(AEGIS_ACT_BLOCK);
      strictEqual(unknownCount(eng), u0, "a known identity is not counted unknown");

      // listed and denied: the deny rule wins (one lookup answers both lists)
      rules.update(
        hashKey(w.sha, 0),
        ruleValue(12, AEGIS_RULE_DENY | AEGIS_RULE_ALLOW, AEGIS_RT_HASH),
      );
      eng.setPolicy(AEGIS_POL_EXEC_ALLOWLIST); // a new policy: `copy` ran (verified) under the last
      strictEqual(tryExec("exec", copy), "EPERM", "listed and denied");
      const d = hashBlocks(eng.records());
      strictEqual(d.length, 1, JSON.stringify(d));
      deepStrictEqual([d[0].ruleId, d[0].ruleFlags, d[0].sha256], [
        12,
        AEGIS_RULE_DENY | AEGIS_RULE_ALLOW,
        w.sha,
      ]);
      rules.update(hashKey(w.sha, 0), allow);
      strictEqual(tryExec("exec", copy), "ok", "listed again");

      // audit mode (the rollout): the unlisted content runs and is reported
      eng.setAudit(true);
      try {
        strictEqual(tryExec("exec", w.other, "other-ran"), "ok", "audit mode allows");
        unlisted(AEGIS_ACT_AUDIT);
      } finally {
        eng.setAudit(false);
      }
      // the agent's own cgroup is exempt
      cfg.setU64(AEGIS_CFG_AGENT_CGID, ownCgroupId());
      try {
        strictEqual(tryExec("exec", w.other, "other-ran"), "ok", "the agent's cgroup is exempt");
        deepStrictEqual(hashBlocks(eng.records()), []);
      } finally {
        cfg.setU64(AEGIS_CFG_AGENT_CGID, 0n);
      }
      strictEqual(tryExec("exec", w.other, "other-ran"), "EPERM", "denied again outside it");
      unlisted(AEGIS_ACT_BLOCK);

      // the switch cleared: everything runs, nothing is hashed
      eng.setPolicy(0);
      strictEqual(tryExec("exec", w.other, "other-ran"), "ok", "switch off");
      deepStrictEqual(hashBlocks(eng.records()), []);
      strictEqual(unknownCount(eng), u0);
    } finally {
      eng.setPolicy(0);
      eng.setAudit(false);
      cfg.setU64(AEGIS_CFG_AGENT_CGID, 0n);
    }
    ok(rules.delete(hashKey(helperSha, 0)));
    ok(rules.delete(hashKey(w.sha, 0)));
  },
});

Deno.test({
  name:
    "deny_binary_hash and allow_binary_hash through the agent: policy v3, applied on the control socket, block events with the digest, capabilities",
  ignore: !LSM_ON,
  fn: async () => {
    const w = await workDirs();
    ok(identity, "test 1 ran first and found whether the kernel gives a SHA-256");
    const e = agentEnv();
    const policy = `${e.dir}/hash.conf`;
    Deno.writeTextFileSync(
      policy,
      `version=3\n# the test binary\n[deny_binary_hash]\nsha256:${w.sha.toUpperCase()}\n`,
    );
    let agent: Agent | null = null;
    try {
      agent = new Agent(["--policy", policy, "--enforce-gate-mode", "audit-fallback"], e.env);
      await agent.ready();
      const report = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(report.requirements.exec_identity_required, true);
      if (identity === "none") {
        strictEqual(report.exec_identity.source, "none");
        ok(
          report.enforce_blockers.includes("EXEC_IDENTITY_UNAVAILABLE"),
          report.enforce_blockers.join(),
        );
        strictEqual(report.requirements_met.exec_identity, false);
        strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 503);
        say("EXEC_IDENTITY_UNAVAILABLE reported, as expected on this kernel");
        return;
      }
      strictEqual(report.runtime_state, "ENFORCE", agent.err.slice(-2000));
      strictEqual(report.exec_identity.source, "ima");
      deepStrictEqual(report.enforce_blockers, []);
      strictEqual(report.requirements_met.exec_identity, true);
      strictEqual(report.hook_details.lsm_bprm_ima_check.attached, true);
      // the proof covers the content lists: an exec of the agent's canary content, denied
      const hp = report.enforcement_proof.exec_hash;
      strictEqual(hp?.ok, true, `exec_hash proof: ${JSON.stringify(report.enforcement_proof)}`);
      strictEqual(hp?.detail, "exec of the sentinel denied with EPERM");
      strictEqual((await httpGet(e.port, "/health?require_enforce=1")).status, 200);

      const copy = `${w.tmp}/agent-copy`;
      Deno.copyFileSync(w.bin, copy);
      strictEqual(tryExec("exec", copy), "EPERM", "denied under the agent");
      strictEqual(tryExec("exec", w.other, "other-ran"), "ok", "a different binary runs");
      const ev = await agent.event(
        (x) => x.type === "block" && x.sha256 === w.sha,
        "the block event with the digest",
      );
      strictEqual(ev.rule_type, "hash");
      strictEqual(ev.identity_source, "ima", "the digest is IMA's");
      strictEqual(ev.hook, "bprm_check_hash");
      strictEqual(ev.action, "BLOCK");
      strictEqual(ev.rule_id, 4, "the rule's policy line");
      strictEqual(ev.path, copy);
      strictEqual(ev.comm, HELPER);
      // the daemon attaches the mapping programs by default: ld.so-style loading is denied too
      strictEqual(report.hook_details.lsm_file_mmap.attached, true, "lsm.s/mmap_file attached");
      strictEqual(report.exec_identity.mprotect, true, "lsm/file_mprotect attached beside it");
      strictEqual(tryMap("mmapx", copy), "EPERM", "an executable mapping under the agent");
      const mev = await agent.event(
        (x) => x.type === "block" && x.sha256 === w.sha && x.hook === "mmap_file_hash",
        "the mapping's block event",
      );
      strictEqual(mev.path, copy);
      strictEqual(mev.rule_type, "hash");

      // allowlist mode through the daemon (same agent): a policy with
      // [allow_binary_hash] applied on the control socket. Only the helper
      // (Deno.Command execs it) and `other` are listed; nothing else is
      // spawned until the deny policy is applied again, the same way (no exec).
      const allow = `${e.dir}/allow.conf`;
      const allowText = `version=3\n[allow_binary_hash]\nsha256:${await sha256(w.helper)}\n` +
        `sha256:${await sha256(w.other)}\n`;
      const applyOver = async (file: string, text: string) => {
        const r = await daemonRequest("POST", "/policy/apply", {
          file,
          policy_b64: encodeBase64(new TextEncoder().encode(text)),
        }, e.socket);
        ok(r, "the daemon answers on its control socket");
        strictEqual(r.status, 200, JSON.stringify(r.body).slice(0, 2000));
      };
      await applyOver(allow, allowText);
      let undone = false;
      try {
        strictEqual(tryExec("exec", w.other, "other-ran"), "ok", "a listed content runs");
        strictEqual(tryExec("exec", w.dyn, "loader-ran"), "EPERM", "an unlisted content does not");
        const aev = await agent.event(
          (x) => x.type === "block" && x.rule_type === "hash_allowlist" && x.path === w.dyn,
          "the not-on-the-allowlist block event",
        );
        strictEqual(aev.sha256, w.dynSha);
        strictEqual(aev.hook, "bprm_check_hash");
        strictEqual(aev.action, "BLOCK");
        strictEqual(aev.rule_id, 0, "no rule matched: the allowlist refused it");
        const mid = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
        strictEqual(mid.policy.allow_binary_hash_count, 2, "the report names allowlist mode");

        // trusted mode (version 5) through the daemon, same agent: only the
        // helper and `other` are trusted; the proof covers the trusted list
        // alone (the canary's deny entry rides along, no deny list of ours)
        const trusted = `${e.dir}/trusted.conf`;
        await applyOver(
          trusted,
          `version=5\n[trusted_exec_hash]\nsha256:${await sha256(w.helper)}\n` +
            `sha256:${await sha256(w.other)}\n`,
        );
        strictEqual(tryExec("exec", w.other, "other-ran"), "ok", "a trusted content runs");
        strictEqual(tryExec("exec", w.dyn, "loader-ran"), "EPERM", "an untrusted one does not");
        const tev = await agent.event(
          (x) => x.type === "block" && x.rule_type === "hash_trusted" && x.path === w.dyn,
          "the not-trusted block event",
        );
        deepStrictEqual([tev.sha256, tev.identity_source, tev.rule_id, tev.action], [
          w.dynSha,
          "ima",
          0,
          "BLOCK",
        ]);
        const tr = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
        strictEqual(tr.policy.trusted_exec_hash_count, 2, "the report names trusted mode");
        strictEqual(tr.runtime_state, "ENFORCE");
        strictEqual(tr.requirements_met.exec_identity, true);
        const hr = await httpGet(e.port, "/health?require_enforce=1");
        strictEqual(hr.status, 200, `trusted mode: ready (${JSON.stringify(hr.body)})`);
        await applyOver(policy, Deno.readTextFileSync(policy));
        undone = true;
      } finally {
        if (!undone) await applyOver(policy, Deno.readTextFileSync(policy));
      }
      strictEqual(tryExec("exec", w.dyn, "loader-ran"), "ok", "the deny policy again: it runs");
      const after = CapabilitiesReport.parse(JSON.parse(Deno.readTextFileSync(e.report)));
      strictEqual(after.policy.allow_binary_hash_count, 0, "and says it is over");
      strictEqual(after.runtime_state, "ENFORCE");
    } finally {
      await cleanupAgent(agent, e);
    }
  },
});

Deno.test({
  name: "deny_binary_hash without BPF LSM: the program loads and attaches, and denies nothing",
  ignore: LSM_ON,
  fn: async () => {
    const w = await workDirs();
    await using eng = await loadEngine((s) => s === SECTION || MAP_SECTIONS.includes(s));
    for (const sec of [SECTION, ...MAP_SECTIONS]) {
      strictEqual(eng.attach.find((x) => x.section === sec)?.status, "attached", sec);
    }
    eng.map("aegis_deny_hash").update(
      hashKey(w.sha, 0),
      ruleValue(7, AEGIS_RULE_DENY, AEGIS_RT_HASH),
    );
    eng.setPolicy(AEGIS_POL_EXEC_HASH);
    strictEqual(tryExec("exec", w.bin), "ok", "bpf is not an active LSM: nothing is denied");
    strictEqual(tryMap("mmapx", w.bin), "ok", "nor an executable mapping");
    deepStrictEqual(hashBlocks(eng.records()), []);
  },
});

Deno.test({
  name:
    "allow_binary_hash without BPF LSM: the exec program loads and attaches, and denies no unlisted content",
  ignore: LSM_ON,
  fn: async () => {
    const w = await workDirs();
    // the exec program only (the allowlist is not applied to mappings)
    await using eng = await loadEngine((s) => s === SECTION);
    strictEqual(eng.attach.find((x) => x.section === SECTION)?.status, "attached");
    eng.setPolicy(AEGIS_POL_EXEC_ALLOWLIST);
    try {
      strictEqual(tryExec("exec", w.other, "other-ran"), "ok", "an allowlist listing nothing");
    } finally {
      eng.setPolicy(0);
    }
    deepStrictEqual(hashBlocks(eng.records()), []);
  },
});
