/**
 * VM tier: the v5 exec-identity sections (docs/engine.md, "Trusted exec
 * identity"): [trusted_exec_hash], [ima_fail_closed], [protect_runtime_deps]
 * and [require_ima_appraisal].
 *
 * Engine level, one object load (the exec program lsm.s/bprm_check_security,
 * the mapping program lsm.s/mmap_file and the mprotect program
 * lsm/file_mprotect) for every case. Each case is a
 * real version=5 policy text, parsed and compiled by the agent's own code
 * (src/policy/parse.ts, compile.ts) and written into the maps, so the
 * switches are the ones an apply sets.
 *
 * lsm-on cells:
 *  1. trusted mode: the trusted static target and a copy of it run; an
 *     untrusted binary gets EPERM and a record (rule_id 0, rule_flags
 *     UNLISTED|TRUSTED, event rule_type "hash_trusted", its digest); audit
 *     mode reports and allows; a trusted content also denied is denied by its
 *     deny line. Without [protect_runtime_deps] mappings check the deny list
 *     only: `ld.so UNTRUSTED` runs and an untrusted library maps and dlopens.
 *  2. [protect_runtime_deps]: `ld.so UNTRUSTED` is refused at the mapping
 *     (record: hook mmap_file_hash, the file, its digest); mmap(PROT_EXEC) and
 *     dlopen of an untrusted library are refused while a trusted one maps and
 *     loads; mprotect(PROT_EXEC) is checked with no deny list (a verified
 *     library passes, an unverified one gets EPERM and a hash_unverified
 *     record; without the section it is not checked); trusting the program
 *     lets ld.so run it; audit mode allows and reports.
 *  3. allow_binary_hash and trusted_exec_hash together: only contents on
 *     both run; each refusal names the list that refused.
 *  4. [ima_fail_closed]: the switch is set by the compile; known contents
 *     are decided as before. The unknown-identity path cannot be made to
 *     happen here (IMA gives SHA-256 for every file on these kernels); the
 *     test says so, and tests/artifacts/exec_identity_test.ts walks that
 *     decision in the very C function the programs run.
 *  5. [require_ima_appraisal]: the IMA policy probe on the live kernel, and
 *     what a one-time write of a harmless appraise rule does to it.
 * lsm-off cells: both programs load and attach and deny nothing.
 *
 * The test's own helper (dynamic: ld.so and libc map into it) is trusted in
 * every policy, with its loader and libc: while a switch is on, every exec
 * and (with protect_runtime_deps) every executable mapping in the guest is
 * checked.
 */
import { deepStrictEqual, notStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_BLOCK,
  AEGIS_CNT_HASH_UNKNOWN,
  AEGIS_HOOK_BPRM_HASH,
  AEGIS_HOOK_MMAP_HASH,
  AEGIS_HOOK_MPROTECT_HASH,
  AEGIS_POL_EXEC_ALLOWLIST,
  AEGIS_POL_EXEC_HASH,
  AEGIS_POL_EXEC_TRUSTED,
  AEGIS_POL_IMA_FAIL_CLOSED,
  AEGIS_POL_NET_TABLES,
  AEGIS_POL_RUNTIME_DEPS,
  AEGIS_RULE_DENY,
  AEGIS_RULE_TRUSTED,
  AEGIS_RULE_UNLISTED,
  AEGIS_RULE_UNVERIFIED,
} from "../../src/bpf/abi_gen.ts";
import type { FileBlockRecord } from "../../src/events/decode.ts";
import { recordToEvent } from "../../src/events/json.ts";
import { compilePolicy } from "../../src/policy/compile.ts";
import { formatIssue, parsePolicy } from "../../src/policy/parse.ts";
import { hostFs } from "../../src/posture/probe.ts";
import { IMA_POLICY_PATH, probeIma } from "../../src/posture/probes/ima.ts";
import { enforceBlockers } from "../../src/posture/blockers.ts";
import { fixtureReport } from "../../src/posture/posture_testing.ts";
import { NO_NEEDS } from "../../src/posture/needs.ts";
import { type Engine, loadEngine } from "../lib/engine.ts";
import { gcc, hashBlocks, LOADER, sha256, viaLoader } from "../lib/exec_vm.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const KERNEL = Deno.env.get("AEGIS_VM_KERNEL") ?? "?";
const EXEC = "lsm.s/bprm_check_security";
const MMAP = "lsm.s/mmap_file";
const MPROTECT = "lsm/file_mprotect";
const UNTRUSTED = AEGIS_RULE_UNLISTED | AEGIS_RULE_TRUSTED;

/* `exec PATH`: execv; `mmapx PATH`: the file's first page mapped
 * executable; `mprotect PATH`: mapped readable, then made executable;
 * `dlopen PATH`: dlopen(RTLD_NOW). Prints "mapped"/the errno
 * name, or "dlerror: ..." */
const HELPER_SRC = String.raw`
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "exec")) {
		execv(argv[2], argv + 2);
		printf("%s\n", strerrorname_np(errno));
		return 1;
	}
	if (argc >= 3 && !strcmp(argv[1], "mmapx")) {
		int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
		void *p = fd < 0 ? MAP_FAILED : mmap(0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);

		if (p == MAP_FAILED) {
			printf("%s\n", strerrorname_np(errno));
			return 1;
		}
		puts("mapped");
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "mprotect")) {
		int fd = open(argv[2], O_RDONLY | O_CLOEXEC);
		void *p = fd < 0 ? MAP_FAILED : mmap(0, 4096, PROT_READ, MAP_PRIVATE, fd, 0);

		if (p == MAP_FAILED || mprotect(p, 4096, PROT_READ | PROT_EXEC)) {
			printf("%s\n", strerrorname_np(errno));
			return 1;
		}
		puts("mapped");
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[1], "dlopen")) {
		if (!dlopen(argv[2], RTLD_NOW)) {
			printf("dlerror: %s\n", dlerror());
			return 1;
		}
		puts("mapped");
		return 0;
	}
	fprintf(stderr, "usage: aegis-tx exec PATH|mmapx PATH|mprotect PATH|dlopen PATH\n");
	return 2;
}
`;
const HELPER = "aegis-tx";

const program = (word: string) =>
  String.raw`
#include <stdio.h>
int main(void) { puts("${word}"); return 0; }
`;
const library = (name: string, v: number) => `int ${name}(void) { return ${v}; }\n`;

interface Work {
  root: string;
  tmp: string;
  helper: string;
  /** the helper, its loader and libc: trusted in every policy */
  base: string[];
  /** static, trusted */
  target: string;
  targetSha: string;
  /** static, never listed */
  other: string;
  otherSha: string;
  /** dynamic (ld.so can run it) */
  dyn: string;
  dynSha: string;
  libOk: string;
  libOkSha: string;
  libBad: string;
  libBadSha: string;
}

/** The libc the helper maps (`ld.so --list HELPER`). */
function libcOf(bin: string): string {
  const o = new Deno.Command(LOADER, { args: ["--list", bin] }).outputSync();
  const out = new TextDecoder().decode(o.stdout);
  const m = /libc\.so\.6 => (\S+)/.exec(out);
  ok(m, `ld.so --list ${bin}: ${out}`);
  return m[1];
}

async function workDirs(): Promise<Work> {
  Deno.mkdirSync("/var/tmp", { recursive: true });
  const root = Deno.makeTempDirSync({ dir: "/var/tmp", prefix: "aegis-et-" });
  const tmp = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-et-" });
  const helper = `${root}/${HELPER}`;
  gcc(HELPER_SRC, helper);
  gcc(program("trusted-ran"), `${root}/target`, ["-static"]);
  gcc(program("other-ran"), `${root}/other`, ["-static"]);
  gcc(program("dyn-ran"), `${root}/dyn`);
  gcc(library("ok_fn", 1), `${root}/libok.so`, ["-shared", "-fPIC"]);
  gcc(library("bad_fn", 2), `${root}/libbad.so`, ["-shared", "-fPIC"]);
  const base = await Promise.all([helper, LOADER, libcOf(helper)].map(sha256));
  return {
    root,
    tmp,
    helper,
    base,
    target: `${root}/target`,
    targetSha: await sha256(`${root}/target`),
    other: `${root}/other`,
    otherSha: await sha256(`${root}/other`),
    dyn: `${root}/dyn`,
    dynSha: await sha256(`${root}/dyn`),
    libOk: `${root}/libok.so`,
    libOkSha: await sha256(`${root}/libok.so`),
    libBad: `${root}/libbad.so`,
    libBadSha: await sha256(`${root}/libbad.so`),
  };
}

/** What the helper printed ("ok" when the program printed `word`, "mapped", an errno name). */
function helper(w: Work, args: string[], word?: string): string {
  const o = new Deno.Command(w.helper, { args }).outputSync();
  const out = new TextDecoder().decode(o.stdout).trim();
  ok(o.code !== 2, `helper ${args.join(" ")}: ${new TextDecoder().decode(o.stderr)}`);
  return word !== undefined && out === word ? "ok" : out;
}

/** A line on stderr, and in the cell's results (exec_trusted.log) where the runner keeps them. */
function say(msg: string): void {
  const line = new TextEncoder().encode(`exec_trusted (${KERNEL}): ${msg}\n`);
  Deno.stderr.writeSync(line);
  const dir = Deno.env.get("AEGIS_VM_RESULTS");
  if (dir) Deno.writeFileSync(`${dir}/exec_trusted.log`, line, { append: true });
}

interface Lists {
  trusted?: string[];
  allow?: string[];
  deny?: string[];
  deps?: boolean;
  failClosed?: boolean;
}

/** A version=5 policy text of these lists (every list also holds the helper's own files). */
function policyText(w: Work, l: Lists): string {
  const lines = ["version=5"];
  const section = (name: string, digests: string[] | undefined, withBase: boolean) => {
    if (!digests) return;
    lines.push(`[${name}]`);
    for (const d of withBase ? [...w.base, ...digests] : digests) lines.push(`sha256:${d}`);
  };
  section("trusted_exec_hash", l.trusted, true);
  section("allow_binary_hash", l.allow, true);
  section("deny_binary_hash", l.deny, false);
  if (l.deps) lines.push("[protect_connect]", "[protect_runtime_deps]");
  if (l.failClosed) lines.push("[ima_fail_closed]");
  return lines.join("\n") + "\n";
}

/**
 * Parse and compile the policy as an apply does, replace the content map's
 * entries with its own, then set its switches. Returns the switches.
 */
function apply(eng: Engine, w: Work, l: Lists): number {
  const text = policyText(w, l);
  const r = parsePolicy(text, "trusted.conf");
  deepStrictEqual(r.errors.map(formatIssue), [], text);
  const { compiled } = compilePolicy(r.policy!, {
    resolvePath: () => {
      throw new Error("no path rules here");
    },
    resolveCgroup: () => null,
  });
  eng.setPolicy(0);
  const m = eng.map("aegis_deny_hash");
  for (const k of m.keys()) m.delete(k);
  for (const e of compiled.entries) {
    if (e.map === "aegis_deny_hash") m.update(e.key(0), e.value);
  }
  eng.setPolicy(compiled.flags);
  return compiled.flags;
}

function unknownCount(eng: Engine): bigint {
  return eng.map("aegis_counters").sumU64(AEGIS_CNT_HASH_UNKNOWN);
}

/** The one record since the last call: its hook, action, flags, digest and file. */
function one(
  eng: Engine,
  hook: number,
  action: number,
  flags: number,
  sha: string,
  path: string,
  ruleId = 0,
): FileBlockRecord {
  const recs = hashBlocks(eng.records());
  strictEqual(recs.length >= 1, true, `a record: ${JSON.stringify(recs)}`);
  const r = recs.find((x) => x.path === path) ?? recs[0];
  deepStrictEqual(
    [r.hook, r.action, r.ruleFlags, r.ruleId, r.sha256, r.path],
    [hook, action, flags, ruleId, sha, path],
    JSON.stringify(recs),
  );
  return r;
}

Deno.test({
  name: "trusted_exec_hash, protect_runtime_deps, ima_fail_closed in the kernel (one object load)",
  ignore: !LSM_ON,
  fn: async () => {
    const w = await workDirs();
    await using eng = await loadEngine((s) => s === EXEC || s === MMAP || s === MPROTECT);
    for (const s of [EXEC, MMAP, MPROTECT]) {
      strictEqual(eng.attach.find((x) => x.section === s)?.status, "attached", s);
    }
    const u0 = unknownCount(eng);
    try {
      // --- 1. trusted mode ---------------------------------------------------
      strictEqual(
        apply(eng, w, { trusted: [w.targetSha] }),
        AEGIS_POL_EXEC_TRUSTED | AEGIS_POL_NET_TABLES,
        "trusted mode alone: no deny-list or allowlist switch",
      );
      strictEqual(helper(w, ["exec", w.target], "trusted-ran"), "ok", "a trusted content runs");
      const copy = `${w.tmp}/copy`;
      Deno.copyFileSync(w.target, copy);
      strictEqual(helper(w, ["exec", copy], "trusted-ran"), "ok", "its copy on tmpfs runs");
      deepStrictEqual(hashBlocks(eng.records()), []);
      if (unknownCount(eng) !== u0) {
        throw new Error("the kernel gave no SHA-256 for a file: these kernels always do");
      }
      strictEqual(helper(w, ["exec", w.other], "other-ran"), "EPERM", "an untrusted content");
      const rec = one(eng, AEGIS_HOOK_BPRM_HASH, AEGIS_ACT_BLOCK, UNTRUSTED, w.otherSha, w.other);
      strictEqual(rec.comm, HELPER);
      const ev = recordToEvent(rec);
      deepStrictEqual([ev.rule_type, ev.hook, ev.rule_id], [
        "hash_trusted",
        "bprm_check_hash",
        0,
      ]);
      eng.setAudit(true);
      try {
        strictEqual(helper(w, ["exec", w.other], "other-ran"), "ok", "audit mode allows");
        one(eng, AEGIS_HOOK_BPRM_HASH, AEGIS_ACT_AUDIT, UNTRUSTED, w.otherSha, w.other);
      } finally {
        eng.setAudit(false);
      }
      // trusted and denied: the deny line decides (the parser warns)
      const f = apply(eng, w, { trusted: [w.targetSha], deny: [w.targetSha] });
      strictEqual(f, AEGIS_POL_EXEC_TRUSTED | AEGIS_POL_EXEC_HASH | AEGIS_POL_NET_TABLES);
      strictEqual(helper(w, ["exec", copy], "trusted-ran"), "EPERM", "trusted and denied");
      // its id: the deny line (version, [trusted_exec_hash], 4 digests, [deny_binary_hash], 8)
      const deniedBoth = AEGIS_RULE_DENY | AEGIS_RULE_TRUSTED;
      one(eng, AEGIS_HOOK_BPRM_HASH, AEGIS_ACT_BLOCK, deniedBoth, w.targetSha, copy, 8);
      // no protect_runtime_deps: mappings check the deny list only
      apply(eng, w, { trusted: [w.targetSha] });
      const free = viaLoader(w.dyn);
      strictEqual(free.out, "dyn-ran", `ld.so runs an untrusted program: ${free.err}`);
      strictEqual(helper(w, ["mmapx", w.libBad]), "mapped", "untrusted library maps");
      strictEqual(helper(w, ["dlopen", w.libBad]), "mapped", "untrusted library dlopens");
      // nor does mprotect: the mapping program does not hash, so nothing is verified
      strictEqual(helper(w, ["mprotect", w.libBad]), "mapped", "mprotect not checked");
      deepStrictEqual(hashBlocks(eng.records()), []);

      // --- 2. protect_runtime_deps ---------------------------------------------
      const deps = apply(eng, w, { trusted: [w.targetSha, w.libOkSha], deps: true });
      strictEqual(deps & AEGIS_POL_RUNTIME_DEPS, AEGIS_POL_RUNTIME_DEPS);
      strictEqual(helper(w, ["exec", w.target], "trusted-ran"), "ok", "a trusted static binary");
      strictEqual(helper(w, ["mmapx", w.libOk]), "mapped", "a trusted library maps");
      strictEqual(helper(w, ["dlopen", w.libOk]), "mapped", "a trusted library dlopens");
      // mprotect(PROT_EXEC) is checked now, with no deny list (aegis_id_lists):
      // the trusted library was verified by its executable mapping above
      strictEqual(helper(w, ["mprotect", w.libOk]), "mapped", "mprotect of a verified library");
      deepStrictEqual(hashBlocks(eng.records()), []);
      strictEqual(helper(w, ["mprotect", w.libBad]), "EPERM", "mprotect of an unverified one");
      const mp = one(
        eng,
        AEGIS_HOOK_MPROTECT_HASH,
        AEGIS_ACT_BLOCK,
        AEGIS_RULE_UNVERIFIED,
        "0".repeat(64),
        "libbad.so",
      );
      strictEqual(recordToEvent(mp).rule_type, "hash_unverified");
      const ld = viaLoader(w.dyn);
      notStrictEqual(ld.code, 0, "ld.so cannot map the untrusted program");
      ok(!ld.out.includes("dyn-ran"), ld.out);
      say(`ld.so ${w.dyn} under protect_runtime_deps: exit ${ld.code}: ${ld.err}`);
      const lr = one(eng, AEGIS_HOOK_MMAP_HASH, AEGIS_ACT_BLOCK, UNTRUSTED, w.dynSha, w.dyn);
      ok(lr.comm.startsWith("ld-linux"), `mapped by ld.so: ${lr.comm}`);
      strictEqual(helper(w, ["mmapx", w.libBad]), "EPERM", "mmap(PROT_EXEC) of an untrusted lib");
      one(eng, AEGIS_HOOK_MMAP_HASH, AEGIS_ACT_BLOCK, UNTRUSTED, w.libBadSha, w.libBad);
      // ld.so's message has no errno text; the record below says the mapping was refused
      const dl = helper(w, ["dlopen", w.libBad]);
      ok(dl.startsWith("dlerror:") && dl.includes("failed to map segment"), dl);
      say(`dlopen of an untrusted library: ${dl}`);
      one(eng, AEGIS_HOOK_MMAP_HASH, AEGIS_ACT_BLOCK, UNTRUSTED, w.libBadSha, w.libBad);
      eng.setAudit(true);
      try {
        strictEqual(helper(w, ["mmapx", w.libBad]), "mapped", "audit mode allows the mapping");
        one(eng, AEGIS_HOOK_MMAP_HASH, AEGIS_ACT_AUDIT, UNTRUSTED, w.libBadSha, w.libBad);
      } finally {
        eng.setAudit(false);
      }
      // the program trusted too: ld.so runs it (ld.so and libc are trusted)
      apply(eng, w, { trusted: [w.targetSha, w.dynSha], deps: true });
      const ran = viaLoader(w.dyn);
      strictEqual(ran.out, "dyn-ran", `ld.so runs the trusted program: ${ran.err}`);
      strictEqual(helper(w, ["exec", w.dyn], "dyn-ran"), "ok", "and so does its exec");
      deepStrictEqual(hashBlocks(eng.records()), []);

      // --- 3. allow_binary_hash and trusted_exec_hash: the intersection -----------
      const both = apply(eng, w, {
        trusted: [w.targetSha, w.dynSha],
        allow: [w.targetSha, w.otherSha],
      });
      strictEqual(
        both & (AEGIS_POL_EXEC_TRUSTED | AEGIS_POL_EXEC_ALLOWLIST),
        AEGIS_POL_EXEC_TRUSTED | AEGIS_POL_EXEC_ALLOWLIST,
      );
      strictEqual(helper(w, ["exec", w.target], "trusted-ran"), "ok", "on both lists");
      deepStrictEqual(hashBlocks(eng.records()), []);
      strictEqual(helper(w, ["exec", w.other], "other-ran"), "EPERM", "allowed, not trusted");
      one(eng, AEGIS_HOOK_BPRM_HASH, AEGIS_ACT_BLOCK, UNTRUSTED, w.otherSha, w.other);
      strictEqual(helper(w, ["exec", w.dyn], "dyn-ran"), "EPERM", "trusted, not allowed");
      const na = one(
        eng,
        AEGIS_HOOK_BPRM_HASH,
        AEGIS_ACT_BLOCK,
        AEGIS_RULE_UNLISTED,
        w.dynSha,
        w.dyn,
      );
      strictEqual(recordToEvent(na).rule_type, "hash_allowlist");

      // --- 4. ima_fail_closed ------------------------------------------------------
      const fc = apply(eng, w, { trusted: [w.targetSha], failClosed: true });
      strictEqual(fc & AEGIS_POL_IMA_FAIL_CLOSED, AEGIS_POL_IMA_FAIL_CLOSED, "the switch is set");
      strictEqual(helper(w, ["exec", w.target], "trusted-ran"), "ok", "fail closed: trusted runs");
      strictEqual(helper(w, ["exec", w.other], "other-ran"), "EPERM", "untrusted denied");
      one(eng, AEGIS_HOOK_BPRM_HASH, AEGIS_ACT_BLOCK, UNTRUSTED, w.otherSha, w.other);
      strictEqual(unknownCount(eng), u0, "no file without a SHA-256 was seen");
      say(
        "ima_fail_closed: the unknown-identity deny is NOT exercised here: IMA gives a SHA-256 " +
          "for every file on this kernel (CONFIG_IMA_DEFAULT_HASH=sha256, no IMA policy with " +
          "another algorithm); that branch is tested on the C function itself " +
          "(tests/artifacts/exec_identity_test.ts)",
      );
    } finally {
      eng.setPolicy(0);
      eng.setAudit(false);
    }
    strictEqual(helper(w, ["exec", w.other], "other-ran"), "ok", "switches off: everything runs");
    deepStrictEqual(hashBlocks(eng.records()), []);
  },
});

Deno.test({
  name:
    "require_ima_appraisal: the IMA policy probe on this kernel, before and after an appraise rule",
  ignore: !LSM_ON,
  fn: async () => {
    const before = await probeIma(hostFs);
    say(`IMA probe before: ${JSON.stringify(before)}`);
    // the blocker on this node when a policy requires appraisal
    const needs = { ...NO_NEEDS, exec_content: true, ima_appraisal: true };
    const report = { ...(await fixtureReport({ needs })), ima: before };
    const codes = enforceBlockers(report, needs).map((b) => b.code);
    // a harmless rule (only files owned by uid 4242 are appraised); on a kernel
    // without CONFIG_IMA_WRITE_POLICY the policy can be written once per boot
    let wrote: string;
    try {
      using f = Deno.openSync(IMA_POLICY_PATH, { write: true });
      f.writeSync(new TextEncoder().encode("appraise fowner=4242\n"));
      wrote = "accepted";
    } catch (e) {
      wrote = `refused: ${e instanceof Error ? e.message : e}`;
    }
    const after = await probeIma(hostFs);
    say(`write "appraise fowner=4242": ${wrote}; IMA probe after: ${JSON.stringify(after)}`);
    if (before.status === "supported") {
      strictEqual(before.value.appraisal, false, "no appraise rule at boot");
      ok(codes.includes("IMA_APPRAISAL_UNAVAILABLE"), codes.join());
      if (wrote === "accepted" && after.status === "supported") {
        strictEqual(after.value.appraisal, true, "the probe flips to true");
        const again = { ...report, ima: after };
        ok(!enforceBlockers(again, needs).some((b) => b.code === "IMA_APPRAISAL_UNAVAILABLE"));
      }
    } else {
      // Debian's kernels: no CONFIG_IMA_READ_POLICY, the policy file is write-only,
      // so appraisal is unknown (never guessed) and the requirement blocks enforce
      strictEqual(before.status, "unknown", JSON.stringify(before));
      ok(before.error.includes("cannot be read"), before.error);
      ok(codes.includes("IMA_APPRAISAL_UNAVAILABLE"), codes.join());
      notStrictEqual(after.status, "supported", "still not readable after the write");
      say(
        "the probe cannot flip from false to true on this kernel: the IMA policy is not " +
          "readable (CONFIG_IMA_READ_POLICY unset); IMA_APPRAISAL_UNAVAILABLE stays",
      );
    }
  },
});

Deno.test({
  name: "trusted_exec_hash and protect_runtime_deps without BPF LSM: load, attach, deny nothing",
  ignore: LSM_ON,
  fn: async () => {
    const w = await workDirs();
    await using eng = await loadEngine((s) => s === EXEC || s === MMAP || s === MPROTECT);
    for (const s of [EXEC, MMAP, MPROTECT]) {
      strictEqual(eng.attach.find((x) => x.section === s)?.status, "attached", s);
    }
    try {
      apply(eng, w, { trusted: [w.targetSha], deps: true, failClosed: true });
      strictEqual(helper(w, ["exec", w.other], "other-ran"), "ok", "bpf is not an active LSM");
      strictEqual(helper(w, ["mmapx", w.libBad]), "mapped", "nor a mapping");
      strictEqual(helper(w, ["mprotect", w.libBad]), "mapped", "nor a mprotect");
      strictEqual(viaLoader(w.dyn).out, "dyn-ran");
    } finally {
      eng.setPolicy(0);
    }
    deepStrictEqual(hashBlocks(eng.records()), []);
  },
});
