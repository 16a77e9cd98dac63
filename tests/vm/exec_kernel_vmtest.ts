/**
 * VM tier: the exec surface (bpf/exec.bpf.c, lsm/bprm_check_security) and
 * the kernel surfaces (bpf/kernel.bpf.c: lsm/ptrace_access_check,
 * lsm/kernel_read_file, lsm/kernel_load_data, lsm/bpf).
 *
 * lsm-on cells, one round trip per rule: allowed → rule → denied with
 * EPERM and a BLOCK record with the right fields → audit mode → allowed
 * with an AUDIT record → rule removed → allowed, no record.
 * lsm-off cells: every program loads and attaches, and with every rule on
 * nothing is denied and no record is emitted.
 *
 * The syscalls are made by a tiny C helper (compiled in the guest with the
 * host's gcc), so each answer is an exact errno name.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_BLOCK,
  AEGIS_CFG_AGENT_CGID,
  AEGIS_HOOK_BPF,
  AEGIS_HOOK_BPRM_CHECK,
  AEGIS_HOOK_KERNEL_LOAD_DATA,
  AEGIS_HOOK_KERNEL_READ_FILE,
  AEGIS_HOOK_PTRACE,
  AEGIS_POL_DENY_BPF,
  AEGIS_POL_DENY_MODULE,
  AEGIS_POL_DENY_PTRACE,
  AEGIS_POL_EXEC_RULES,
  AEGIS_POL_FILE_RULES,
  AEGIS_RT_BPF,
  AEGIS_RT_COMM,
  AEGIS_RT_INODE,
  AEGIS_RT_MODULE,
  AEGIS_RT_PTRACE,
  AEGIS_RULE_DENY,
} from "../../src/bpf/abi_gen.ts";
import { commKey } from "../../src/bpf/exec_codec.ts";
import { inodeKey, kernelDev, ruleValue } from "../../src/bpf/rule_codec.ts";
import type { FileBlockRecord, KernelBlockRecord, KernelRecord } from "../../src/events/decode.ts";
import { type Engine, loadEngine } from "../lib/engine.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

const EXEC_SECTIONS = ["lsm/bprm_check_security"];
const KERNEL_SECTIONS = [
  "lsm/ptrace_access_check",
  "lsm/kernel_read_file",
  "lsm/kernel_load_data",
  "lsm/bpf",
];

/* The helper: `exec PATH`, `ptrace PID`, `finit PATH`, `init`, `bpf`;
 * prints "ok" or the errno name. */
const HELPER_SRC = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int say(long rc)
{
	if (rc < 0) { printf("%s\n", strerrorname_np(errno)); return 1; }
	printf("ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "exec")) {
		execv(argv[2], argv + 2);
		return say(-1);
	}
	if (argc >= 3 && !strcmp(argv[1], "ptrace")) {
		pid_t pid = atoi(argv[2]);
		int st;
		if (ptrace(PTRACE_ATTACH, pid, 0, 0) < 0) return say(-1);
		waitpid(pid, &st, __WALL);
		ptrace(PTRACE_DETACH, pid, 0, 0);
		return say(0);
	}
	if (argc >= 3 && !strcmp(argv[1], "finit")) {
		int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
		if (fd < 0) return say(-1);
		return say(syscall(SYS_finit_module, fd, "", 0));
	}
	if (argc >= 2 && !strcmp(argv[1], "init")) {
		static char junk[64] = "not an ELF module";
		return say(syscall(SYS_init_module, junk, sizeof(junk), ""));
	}
	if (argc >= 2 && !strcmp(argv[1], "bpf")) {
		union bpf_attr a;
		memset(&a, 0, sizeof(a));
		a.map_type = BPF_MAP_TYPE_ARRAY;
		a.key_size = 4;
		a.value_size = 4;
		a.max_entries = 1;
		long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof(a));
		if (fd >= 0) close(fd);
		return say(fd);
	}
	fprintf(stderr, "usage: aegis-kops exec PATH|ptrace PID|finit PATH|init|bpf\n");
	return 2;
}
`;

const HELPER_COMM = "aegis-kops";

let work: string | undefined;

/** Work dir with the compiled helper and a copy of /bin/true. */
function workDir(): string {
  if (work) return work;
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-ek-" });
  Deno.writeTextFileSync(`${dir}/kops.c`, HELPER_SRC);
  const cc = new Deno.Command("gcc", {
    args: ["-O1", "-o", `${dir}/${HELPER_COMM}`, `${dir}/kops.c`],
  }).outputSync();
  strictEqual(cc.code, 0, `gcc failed: ${new TextDecoder().decode(cc.stderr)}`);
  Deno.copyFileSync("/bin/true", `${dir}/x`);
  Deno.chmodSync(`${dir}/x`, 0o755);
  Deno.writeFileSync(`${dir}/junk.ko`, new TextEncoder().encode("not an ELF module\n"));
  work = dir;
  return dir;
}

interface Run {
  out: string;
  code: number;
}

/** Run the helper (optionally inside cgroup `cg`, via sh). */
function kops(args: string[], cg?: string): Run {
  const bin = `${workDir()}/${HELPER_COMM}`;
  const cmd = cg
    ? new Deno.Command("/bin/sh", {
      args: ["-c", `echo $$ > ${cg}/cgroup.procs && exec "$0" "$@"`, bin, ...args],
    })
    : new Deno.Command(bin, { args });
  const o = cmd.outputSync();
  const err = new TextDecoder().decode(o.stderr).trim();
  ok(o.code !== 2 && !err, `helper ${args.join(" ")}: exit ${o.code}, stderr ${err}`);
  return { out: new TextDecoder().decode(o.stdout).trim(), code: o.code };
}

/** errno name of exec'ing `path` ("ok" when it ran; /bin/true prints nothing). */
function tryExec(path: string): string {
  const r = kops(["exec", path]);
  if (r.out === "" && r.code === 0) return "ok";
  return r.out;
}

function inodeOf(path: string): Uint8Array<ArrayBuffer> {
  const st = Deno.statSync(path);
  return inodeKey(kernelDev(st.dev), st.ino!, 0);
}

function fileBlocks(recs: KernelRecord[]): FileBlockRecord[] {
  return recs.filter((r): r is FileBlockRecord => r.kind === "file_block");
}

function kernelBlocks(recs: KernelRecord[]): KernelBlockRecord[] {
  return recs.filter((r): r is KernelBlockRecord => r.kind === "kernel_block");
}

function attachedAll(eng: Engine, sections: string[]): void {
  for (const s of sections) {
    const r = eng.attach.find((a) => a.section === s);
    ok(r, `program for ${s} is in the object`);
    strictEqual(r.status, "attached", JSON.stringify(r));
  }
}

/**
 * One round trip: `act()` answers "ok" before the rule, the expected errno
 * with the rule (one BLOCK record checked by `check`), "ok" in audit mode
 * (one AUDIT record), "ok" with no record after `remove()`.
 */
function roundTrip<R extends FileBlockRecord | KernelBlockRecord>(
  eng: Engine,
  what: string,
  act: () => string,
  add: () => void,
  remove: () => void,
  pick: (recs: KernelRecord[]) => R[],
  check: (r: R) => void,
  denied = "EPERM",
): void {
  eng.records();
  strictEqual(act(), "ok", `${what}: allowed before the rule`);
  deepStrictEqual(pick(eng.records()), [], `${what}: no record before the rule`);
  add();
  strictEqual(act(), denied, `${what}: denied with the rule`);
  const blocked = pick(eng.records());
  strictEqual(blocked.length, 1, `${what}: one block record ${JSON.stringify(blocked)}`);
  strictEqual(blocked[0].action, AEGIS_ACT_BLOCK, `${what}: action BLOCK`);
  check(blocked[0]);
  eng.setAudit(true);
  try {
    strictEqual(act(), "ok", `${what}: allowed in audit mode`);
    const audited = pick(eng.records());
    strictEqual(audited.length, 1, `${what}: one audit record ${JSON.stringify(audited)}`);
    strictEqual(audited[0].action, AEGIS_ACT_AUDIT, `${what}: action AUDIT`);
    check(audited[0]);
  } finally {
    eng.setAudit(false);
  }
  remove();
  strictEqual(act(), "ok", `${what}: allowed after the rule is removed`);
  deepStrictEqual(pick(eng.records()), [], `${what}: no record after removal`);
}

/** The cgroup v2 id of the current process (= inode of its cgroup dir). */
function ownCgroupId(): bigint {
  const line = Deno.readTextFileSync("/proc/self/cgroup").split("\n").find((l) =>
    l.startsWith("0::")
  );
  ok(line, "cgroup v2 membership in /proc/self/cgroup");
  return BigInt(Deno.statSync(`/sys/fs/cgroup${line.slice(3)}`.replace(/\/$/, "")).ino!);
}

Deno.test({
  name: "bprm_check denies exec of a denied binary (and its hard link) and of a denied comm",
  ignore: !LSM_ON,
  fn: async () => {
    const dir = workDir();
    await using eng = await loadEngine((s) => EXEC_SECTIONS.includes(s));
    attachedAll(eng, EXEC_SECTIONS);
    const deny = eng.map("aegis_deny_inode");
    const comms = eng.map("aegis_deny_comm");
    const bin = `${dir}/x`;
    const st = Deno.statSync(bin);
    const binRule = ruleValue(11, AEGIS_RULE_DENY, AEGIS_RT_INODE);
    const checkBin = (path: string) => (r: FileBlockRecord) => {
      strictEqual(r.hook, AEGIS_HOOK_BPRM_CHECK);
      strictEqual(r.ino, st.ino);
      strictEqual(r.dev, kernelDev(st.dev));
      strictEqual(r.ruleId, 11);
      strictEqual(r.ruleFlags, AEGIS_RULE_DENY);
      strictEqual(r.path, path);
      strictEqual(r.comm, HELPER_COMM, "the record names the process that called exec");
    };

    // binary rule, with only the exec switch on
    eng.setPolicy(AEGIS_POL_EXEC_RULES);
    roundTrip(
      eng,
      "exec binary (EXEC_RULES)",
      () => tryExec(bin),
      () => deny.update(inodeOf(bin), binRule),
      () => ok(deny.delete(inodeOf(bin))),
      fileBlocks,
      checkBin(bin),
    );
    // the same with only the file switch on; and a hard link is the same inode
    eng.setPolicy(AEGIS_POL_FILE_RULES);
    Deno.linkSync(bin, `${dir}/alias`);
    roundTrip(
      eng,
      "exec hard link (FILE_RULES)",
      () => tryExec(`${dir}/alias`),
      () => deny.update(inodeOf(bin), binRule),
      () => ok(deny.delete(inodeOf(bin))),
      fileBlocks,
      checkBin(`${dir}/alias`),
    );

    // deny_comm: the comm is the basename of the executed path, cut to 15 bytes
    eng.setPolicy(AEGIS_POL_EXEC_RULES);
    const long = `${dir}/aegis-comm-very-long-name`;
    Deno.linkSync(bin, long);
    Deno.symlinkSync(long, `${dir}/other-name`);
    const commRule = ruleValue(12, AEGIS_RULE_DENY, AEGIS_RT_COMM);
    roundTrip(
      eng,
      "exec comm",
      () => tryExec(long),
      () => comms.update(commKey("aegis-comm-very", 0), commRule),
      () => ok(comms.delete(commKey("aegis-comm-very", 0))),
      fileBlocks,
      (r) => {
        strictEqual(r.hook, AEGIS_HOOK_BPRM_CHECK);
        strictEqual(r.ruleId, 12);
        strictEqual(r.ruleFlags, AEGIS_RULE_DENY);
        strictEqual(r.ino, st.ino, "ino of the binary");
        strictEqual(r.dev, kernelDev(st.dev));
        strictEqual(r.path, "aegis-comm-very", "the comm, in the path field");
      },
    );
    // a comm rule follows the name used, not the file; generation 1 keys do not match gen 0
    comms.update(commKey("aegis-comm-very", 0), commRule);
    comms.update(commKey("x", 1), commRule);
    try {
      strictEqual(tryExec(`${dir}/other-name`), "ok", "same binary through another name");
      strictEqual(tryExec(bin), "ok", "a gen-1 key does not match in gen 0");
      strictEqual(tryExec(long), "EPERM", "still denied by its own name");
      strictEqual(fileBlocks(eng.records()).length, 1);
    } finally {
      comms.delete(commKey("aegis-comm-very", 0));
      comms.delete(commKey("x", 1));
    }
  },
});

Deno.test({
  name: "ptrace attach, module load and bpf() are denied by their switches",
  ignore: !LSM_ON,
  fn: async () => {
    const dir = workDir();
    const sleeper = new Deno.Command("sleep", { args: ["60"] }).spawn();
    const cg = "/sys/fs/cgroup/aegis-ek-denied";
    Deno.mkdirSync(cg, { recursive: true });
    try {
      await using eng = await loadEngine((s) => KERNEL_SECTIONS.includes(s));
      attachedAll(eng, KERNEL_SECTIONS);
      const helperComm = (r: KernelBlockRecord) => strictEqual(r.comm, HELPER_COMM);

      roundTrip(
        eng,
        "ptrace attach",
        () => kops(["ptrace", String(sleeper.pid)]).out,
        () => eng.setPolicy(AEGIS_POL_DENY_PTRACE),
        () => eng.setPolicy(0),
        kernelBlocks,
        (r) => {
          helperComm(r);
          strictEqual(r.hook, AEGIS_HOOK_PTRACE);
          strictEqual(r.ruleType, AEGIS_RT_PTRACE);
          strictEqual(r.targetPid, sleeper.pid);
          ok(r.detail & 0x02, `detail is the ptrace mode with ATTACH: ${r.detail}`);
        },
      );
      // read-mode access (PTRACE_MODE_READ) stays allowed; /proc/PID/mem is attach-mode
      eng.setPolicy(AEGIS_POL_DENY_PTRACE);
      try {
        ok(Deno.readFileSync(`/proc/${sleeper.pid}/environ`).length >= 0, "environ readable");
        strictEqual(kernelBlocks(eng.records()).length, 0, "read mode is never denied");
        let memErr = "ok";
        try {
          Deno.openSync(`/proc/${sleeper.pid}/mem`).close();
        } catch (e) {
          memErr = e instanceof Error ? e.message : String(e);
        }
        // mm_access() turns the hook's EPERM into EACCES
        ok(/os error 13/.test(memErr), `/proc/PID/mem refused: ${memErr}`);
        strictEqual(kernelBlocks(eng.records()).length, 1, "/proc/PID/mem is recorded");
      } finally {
        eng.setPolicy(0);
      }

      // module loads: junk is refused later with another errno when allowed,
      // so EPERM proves the hook ran first
      const notEperm = (r: Run) => (r.out !== "EPERM" && r.out !== "ok" ? "ok" : r.out);
      roundTrip(
        eng,
        "finit_module",
        () => notEperm(kops(["finit", `${dir}/junk.ko`])),
        () => eng.setPolicy(AEGIS_POL_DENY_MODULE),
        () => eng.setPolicy(0),
        kernelBlocks,
        (r) => {
          helperComm(r);
          strictEqual(r.hook, AEGIS_HOOK_KERNEL_READ_FILE);
          strictEqual(r.ruleType, AEGIS_RT_MODULE);
          strictEqual(r.detail, 2, "READING_MODULE");
          strictEqual(r.targetPid, 0);
        },
      );
      roundTrip(
        eng,
        "init_module",
        () => notEperm(kops(["init"])),
        () => eng.setPolicy(AEGIS_POL_DENY_MODULE),
        () => eng.setPolicy(0),
        kernelBlocks,
        (r) => {
          helperComm(r);
          strictEqual(r.hook, AEGIS_HOOK_KERNEL_LOAD_DATA);
          strictEqual(r.ruleType, AEGIS_RT_MODULE);
          strictEqual(r.detail, 2, "LOADING_MODULE");
        },
      );

      // bpf(): this process is the agent (its cgroup allowlisted); the helper
      // runs in another cgroup
      eng.obj.map("aegis_config").setU64(AEGIS_CFG_AGENT_CGID, ownCgroupId());
      roundTrip(
        eng,
        "bpf()",
        () => kops(["bpf"], cg).out,
        () => eng.setPolicy(AEGIS_POL_DENY_BPF),
        () => eng.setPolicy(0),
        kernelBlocks,
        (r) => {
          helperComm(r);
          strictEqual(r.hook, AEGIS_HOOK_BPF);
          strictEqual(r.ruleType, AEGIS_RT_BPF);
          strictEqual(r.detail, 0, "BPF_MAP_CREATE");
          strictEqual(BigInt(r.cgid), BigInt(Deno.statSync(cg).ino!), "the helper's cgroup");
        },
      );
      // while denied, the agent's own bpf() calls keep working
      eng.setPolicy(AEGIS_POL_DENY_BPF);
      try {
        strictEqual(kops(["bpf"]).out, "ok", "the agent's cgroup is never denied");
        strictEqual(kops(["bpf"], cg).out, "EPERM");
        strictEqual(kernelBlocks(eng.records()).length, 1);
      } finally {
        eng.setPolicy(0);
      }
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.status;
      try {
        Deno.removeSync(cg);
      } catch {
        // a helper may still be exiting; the guest is thrown away
      }
    }
  },
});

Deno.test({
  name: "without bpf in lsm= the exec and kernel programs attach and deny nothing",
  ignore: LSM_ON,
  fn: async () => {
    const lsms = Deno.readTextFileSync("/sys/kernel/security/lsm").trim().split(",");
    ok(!lsms.includes("bpf"), `bpf must not be active here: ${lsms}`);
    const dir = workDir();
    const sections = [...EXEC_SECTIONS, ...KERNEL_SECTIONS];
    const sleeper = new Deno.Command("sleep", { args: ["60"] }).spawn();
    try {
      await using eng = await loadEngine((s) => sections.includes(s));
      attachedAll(eng, sections);
      eng.setPolicy(
        AEGIS_POL_FILE_RULES | AEGIS_POL_EXEC_RULES | AEGIS_POL_DENY_PTRACE |
          AEGIS_POL_DENY_MODULE | AEGIS_POL_DENY_BPF,
      );
      eng.map("aegis_deny_inode").update(
        inodeOf(`${dir}/x`),
        ruleValue(1, AEGIS_RULE_DENY, AEGIS_RT_INODE),
      );
      eng.map("aegis_deny_comm").update(
        commKey(HELPER_COMM, 0),
        ruleValue(2, AEGIS_RULE_DENY, AEGIS_RT_COMM),
      );
      strictEqual(tryExec(`${dir}/x`), "ok", "denied binary still runs");
      strictEqual(kops(["ptrace", String(sleeper.pid)]).out, "ok", "ptrace attach");
      ok(kops(["finit", `${dir}/junk.ko`]).out !== "EPERM", "finit_module not denied");
      ok(kops(["init"]).out !== "EPERM", "init_module not denied");
      strictEqual(kops(["bpf"]).out, "ok", "bpf()");
      deepStrictEqual(eng.records(), [], "no record: the hooks never ran");
    } finally {
      sleeper.kill("SIGKILL");
      await sleeper.status;
    }
  },
});
