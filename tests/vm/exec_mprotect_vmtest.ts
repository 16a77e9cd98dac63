/**
 * VM tier: mprotect(PROT_EXEC) of a file mapping under [deny_binary_hash]
 * (bpf/exec_hash.bpf.c lsm/file_mprotect, the verified-file cache
 * aegis_hash_verified of bpf/lib/hash_verified.h; docs/engine.md
 * "mprotect(PROT_EXEC)").
 *
 * lsm-on cells, engine level, one object load (the exec, mapping and
 * mprotect programs, and lsm/file_open and lsm/inode_permission, which
 * forget a file opened for writing), rules written into the maps:
 *  a. a readable mapping of the denied content made executable: EPERM, a
 *     record with hook file_mprotect_hash, no digest, AEGIS_RULE_UNVERIFIED;
 *  b. the same for a harmless file never mapped executable (fail closed),
 *     only while hash rules are live: without them it is allowed;
 *  c. a file mapped executable first (the mapping program hashed it and
 *     did not deny it) can then have a readable mapping made executable, on
 *     tmpfs and on the overlayfs root (whose mappings carry the layer's
 *     file); dropping and restoring PROT_EXEC (text relocations) works;
 *  d. the file changed (same size, other size), opened for writing without
 *     a write, or open for writing while it is mapped: refused again until
 *     it is mapped executable again; a memfd is never verified;
 *  e. dynamically linked programs run with the rules live, and a mapping
 *     that is executable already keeps its mprotect calls;
 *  f. audit mode allows and reports (AUDIT); the agent's cgroup is exempt;
 *  g. a new policy (the epoch bumped, or the other generation) makes every
 *     earlier verification a miss.
 * lsm-off cell: the program loads and attaches, and refuses nothing.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_BLOCK,
  AEGIS_CFG_AGENT_CGID,
  AEGIS_CFG_HASH_EPOCH,
  AEGIS_HOOK_MMAP_HASH,
  AEGIS_HOOK_MPROTECT_HASH,
  AEGIS_POL_EXEC_HASH,
  AEGIS_RT_HASH,
  AEGIS_RULE_DENY,
  AEGIS_RULE_UNVERIFIED,
} from "../../src/bpf/abi_gen.ts";
import { hashKey, ruleValue } from "../../src/bpf/rule_codec.ts";
import { loadEngine } from "../lib/engine.ts";
import { type ExecWork, execWork, hashBlocks, ownCgroupId } from "../lib/exec_hash_testing.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const KERNEL = Deno.env.get("AEGIS_VM_KERNEL") ?? "?";
const SECTIONS = [
  "lsm.s/bprm_check_security",
  "lsm.s/mmap_file",
  "lsm/file_mprotect",
  "lsm/file_open",
  // run --lsm-hook=both: the write check of inode_permission forgets a file too
  "lsm/inode_permission",
];

/*
 * Each mode prints one line of words, "ok" or the errno name per step:
 *  mprotect PATH  mmap readable, then mprotect executable
 *  mmapx PATH     mmap executable
 *  textrel PATH   mmap executable, mprotect writable (drops exec), mprotect executable again
 *  keep PATH      mmap executable; write one byte of the file (same value);
 *                 mprotect that mapping again (executable already); a second
 *                 readable mapping made executable
 *  memfd PATH     the file's bytes in a memfd: mmap executable, then a readable
 *                 mapping made executable
 *  anon           anonymous memory made executable
 */
const HELPER_SRC = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define R PROT_READ
#define RX (PROT_READ | PROT_EXEC)

static void word(int failed)
{
	printf("%s%s", failed ? strerrorname_np(errno) : "ok", "");
}

static void *map(int fd, int prot)
{
	void *p = mmap(0, 4096, prot, MAP_PRIVATE, fd, 0);

	return p == MAP_FAILED ? 0 : p;
}

static int xprotect(int fd)
{
	void *p = map(fd, R);

	if (!p)
		return -1;
	return mprotect(p, 4096, RX);
}

int main(int argc, char **argv)
{
	const char *m = argc > 1 ? argv[1] : "";
	int fd = argc > 2 ? open(argv[2], O_RDONLY | O_CLOEXEC) : -1;
	void *p;

	if (!strcmp(m, "anon")) {
		p = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		word(p == MAP_FAILED || mprotect(p, 4096, RX));
		puts("");
		return 0;
	}
	if (fd < 0) {
		fprintf(stderr, "usage: aegis-mx mprotect|mmapx|textrel|keep|memfd PATH | anon\n");
		return 2;
	}
	if (!strcmp(m, "mprotect")) {
		word(xprotect(fd) != 0);
	} else if (!strcmp(m, "mmapx")) {
		word(!map(fd, RX));
	} else if (!strcmp(m, "textrel")) {
		p = map(fd, RX);
		if (!p) {
			word(1);
		} else {
			word(mprotect(p, 4096, PROT_READ | PROT_WRITE) != 0);
			putchar(' ');
			word(mprotect(p, 4096, RX) != 0);
		}
	} else if (!strcmp(m, "keep")) {
		int w;
		char c;

		p = map(fd, RX);
		if (!p) {
			word(1);
		} else {
			w = open(argv[2], O_WRONLY | O_CLOEXEC);
			if (w < 0 || pread(fd, &c, 1, 0) != 1 || pwrite(w, &c, 1, 0) != 1) {
				word(1);
			} else {
				close(w);
				word(mprotect(p, 4096, RX) != 0);
				putchar(' ');
				word(xprotect(fd) != 0);
			}
		}
	} else if (!strcmp(m, "memfd")) {
		char buf[65536];
		ssize_t n;
		int mf = memfd_create("aegis-mx", MFD_CLOEXEC);

		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(mf, buf, n) != n)
				return 1;
		word(!map(mf, RX));
		putchar(' ');
		word(xprotect(mf) != 0);
	} else {
		fprintf(stderr, "unknown mode %s\n", m);
		return 2;
	}
	puts("");
	return 0;
}
`;
const HELPER = "aegis-mx";

let work: ExecWork | undefined;

async function workDirs(): Promise<ExecWork> {
  work ??= await execWork("aegis-mx-", HELPER, HELPER_SRC);
  return work;
}

/** The helper's words ("ok" or an errno name per step). */
function mx(mode: string, path = ""): string {
  const o = new Deno.Command(work!.helper, { args: path ? [mode, path] : [mode] }).outputSync();
  const dec = new TextDecoder();
  strictEqual(o.code, 0, `helper ${mode} ${path}: exit ${o.code}: ${dec.decode(o.stderr)}`);
  return dec.decode(o.stdout).trim();
}

function say(msg: string): void {
  Deno.stderr.writeSync(new TextEncoder().encode(`exec_mprotect (${KERNEL}): ${msg}\n`));
}

/** A fresh copy of `src` (a new inode) at `dst`. */
function fresh(src: string, dst: string): string {
  try {
    Deno.removeSync(dst);
  } catch { /* absent */ }
  Deno.copyFileSync(src, dst);
  return dst;
}

Deno.test({
  name: "mprotect(PROT_EXEC) under deny_binary_hash: only a verified, unchanged file",
  ignore: !LSM_ON,
  fn: async () => {
    const w = await workDirs();
    const t0 = performance.now();
    await using eng = await loadEngine((s) => SECTIONS.includes(s));
    for (const sec of SECTIONS) {
      strictEqual(eng.attach.find((x) => x.section === sec)?.status, "attached", sec);
    }
    const rules = eng.map("aegis_deny_hash");
    const cfg = eng.map("aegis_config");
    const drained = () => hashBlocks(eng.records());
    /** The one mprotect record of the last step, checked. */
    const refused = (path: string, action = AEGIS_ACT_BLOCK) => {
      const r = drained().filter((x) => x.hook === AEGIS_HOOK_MPROTECT_HASH);
      strictEqual(r.length, 1, `${path}: one mprotect record ${JSON.stringify(r)}`);
      strictEqual(r[0].action, action, path);
      strictEqual(r[0].sha256, "0".repeat(64), "no digest: nothing was hashed");
      strictEqual(r[0].ruleId, 0);
      strictEqual(r[0].ruleFlags, AEGIS_RULE_UNVERIFIED);
      strictEqual(r[0].path, path.slice(path.lastIndexOf("/") + 1), "the file's name");
      strictEqual(r[0].comm, HELPER);
      if (path.startsWith("/tmp/")) strictEqual(r[0].ino, Deno.statSync(path).ino, path);
    };
    const harmless = fresh(w.other, `${w.tmp}/harmless`);

    // (b, no rules) the rule in the map but not the switch: nothing is checked
    rules.update(hashKey(w.sha, 0), ruleValue(7, AEGIS_RULE_DENY, AEGIS_RT_HASH));
    eng.setPolicy(0);
    strictEqual(mx("mprotect", harmless), "ok", "no hash rules: mprotect allowed");
    strictEqual(mx("mprotect", w.bin), "ok", "no hash rules: even the denied content");
    deepStrictEqual(drained(), []);

    eng.setPolicy(AEGIS_POL_EXEC_HASH);
    // (a) the denied content: mmap(PROT_EXEC) is refused by the mapping
    // program (it hashes), mprotect by the mprotect program (never verified)
    const denied = fresh(w.bin, `${w.tmp}/denied`);
    strictEqual(mx("mprotect", denied), "EPERM", "mprotect of the denied content");
    refused(denied);
    strictEqual(mx("mmapx", denied), "EPERM", "mmap PROT_EXEC of the denied content");
    deepStrictEqual(drained().map((r) => [r.hook, r.sha256]), [[AEGIS_HOOK_MMAP_HASH, w.sha]]);
    strictEqual(mx("mprotect", denied), "EPERM", "a denied content is never verified");
    refused(denied);
    // (b) a harmless file never mapped executable: fail closed
    strictEqual(mx("mprotect", harmless), "EPERM", "never verified: refused");
    refused(harmless);
    // anonymous memory is not checked
    strictEqual(mx("anon"), "ok", "anonymous memory made executable");

    // (c) verified by an executable mapping, then allowed; tmpfs and overlayfs root
    const onRoot = fresh(w.other, `${w.root}/harmless`);
    for (const f of [harmless, onRoot]) {
      strictEqual(mx("mmapx", f), "ok", `${f}: mapped executable (hashed, not denied)`);
      strictEqual(mx("mprotect", f), "ok", `${f}: verified: mprotect allowed`);
      strictEqual(mx("mprotect", f), "ok", `${f}: again (the entry stays)`);
      strictEqual(mx("textrel", f), "ok ok", `${f}: exec dropped and restored`);
    }
    deepStrictEqual(drained(), []);

    // (d) changes: same size, other size, a write-open without a write, a writer
    const bytes = Deno.readFileSync(harmless);
    const flip = bytes.slice();
    flip[flip.length - 1] ^= 0xff; // the last byte: not in the first page, not code
    Deno.writeFileSync(harmless, flip);
    strictEqual(Deno.statSync(harmless).size, bytes.length);
    strictEqual(mx("mprotect", harmless), "EPERM", "changed, same size");
    refused(harmless);
    strictEqual(mx("mmapx", harmless), "ok");
    strictEqual(mx("mprotect", harmless), "ok", "verified again");
    Deno.writeFileSync(harmless, new Uint8Array([0]), { append: true });
    strictEqual(mx("mprotect", harmless), "EPERM", "changed, other size");
    refused(harmless);
    strictEqual(mx("mmapx", harmless), "ok");
    strictEqual(mx("mprotect", harmless), "ok", "verified again");
    const before = Deno.statSync(harmless);
    Deno.openSync(harmless, { write: true }).close(); // no write: ctime and size stay
    const after = Deno.statSync(harmless);
    deepStrictEqual([after.size, after.ctime?.getTime()], [before.size, before.ctime?.getTime()]);
    strictEqual(mx("mprotect", harmless), "EPERM", "opened for writing: forgotten");
    refused(harmless);
    {
      using writer = Deno.openSync(harmless, { write: true });
      strictEqual(mx("mmapx", harmless), "ok", "mapped executable while a writer is open");
      strictEqual(mx("mprotect", harmless), "EPERM", "not verified while a writer is open");
      refused(harmless);
      ok(writer.statSync().isFile);
    }
    strictEqual(mx("mprotect", harmless), "EPERM", "the writer's time left nothing verified");
    refused(harmless);
    strictEqual(mx("mmapx", harmless), "ok");
    strictEqual(mx("mprotect", harmless), "ok", "verified after the writer closed");
    // the denied content written over a verified file: refused, and mapping it too
    const victim = fresh(w.other, `${w.tmp}/victim`);
    strictEqual(mx("mmapx", victim), "ok");
    strictEqual(mx("mprotect", victim), "ok");
    Deno.writeFileSync(victim, Deno.readFileSync(w.bin));
    strictEqual(mx("mprotect", victim), "EPERM", "overwritten with the denied content");
    refused(victim);
    strictEqual(mx("mmapx", victim), "EPERM");
    strictEqual(drained()[0]?.sha256, w.sha);
    // a memfd (its writable fd is not counted as a writer): never verified
    strictEqual(mx("memfd", w.other), "ok EPERM", "memfd: mapped executable, mprotect refused");
    strictEqual(drained().filter((r) => r.hook === AEGIS_HOOK_MPROTECT_HASH).length, 1);

    // (e) dynamically linked programs run (the loader maps, RELRO mprotects)
    const progs: string[][] = [["/bin/true"], ["/bin/ls", "/"], ["/bin/sh", "-c", "true"]];
    for (const py of ["/usr/bin/python3", "/bin/python3"]) {
      try {
        if (Deno.statSync(py).isFile) {
          progs.push([py, "-c", "import ctypes, json; print(1)"]);
          break;
        }
      } catch { /* not in this guest */ }
    }
    for (const [cmd, ...args] of progs) {
      const o = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).outputSync();
      strictEqual(o.code, 0, `${cmd}: ${new TextDecoder().decode(o.stderr)}`);
    }
    say(`ran with the rules live: ${progs.map((p) => p[0]).join(", ")}`);
    // a mapping executable already keeps mprotect; a new one of the changed file is refused
    const kept = fresh(w.other, `${w.tmp}/kept`);
    strictEqual(mx("keep", kept), "ok EPERM", "executable mapping kept, new mapping refused");
    deepStrictEqual(drained().map((r) => r.hook), [AEGIS_HOOK_MPROTECT_HASH]);

    // (f) audit mode: allowed and reported; the agent's cgroup: exempt
    const unverified = fresh(w.other, `${w.tmp}/unverified`);
    eng.setAudit(true);
    try {
      strictEqual(mx("mprotect", unverified), "ok", "audit mode allows");
      refused(unverified, AEGIS_ACT_AUDIT);
    } finally {
      eng.setAudit(false);
    }
    cfg.setU64(AEGIS_CFG_AGENT_CGID, ownCgroupId());
    try {
      strictEqual(mx("mprotect", unverified), "ok", "the agent's cgroup is exempt");
      deepStrictEqual(drained(), []);
    } finally {
      cfg.setU64(AEGIS_CFG_AGENT_CGID, 0n);
    }

    // (g) a new policy: the epoch bumped, or the other generation, is a miss
    const g = fresh(w.other, `${w.tmp}/gen`);
    strictEqual(mx("mmapx", g), "ok");
    strictEqual(mx("mprotect", g), "ok");
    cfg.setU64(AEGIS_CFG_HASH_EPOCH, cfg.sumU64(AEGIS_CFG_HASH_EPOCH) + 1n);
    strictEqual(mx("mprotect", g), "EPERM", "another epoch: verified under an older policy");
    refused(g);
    strictEqual(mx("mmapx", g), "ok");
    strictEqual(mx("mprotect", g), "ok", "verified under this epoch");
    rules.update(hashKey(w.sha, 1), ruleValue(7, AEGIS_RULE_DENY, AEGIS_RT_HASH));
    eng.setPolicy(AEGIS_POL_EXEC_HASH, 1);
    eng.setGeneration(1);
    try {
      strictEqual(mx("mprotect", g), "EPERM", "generation 1: verified under generation 0");
      refused(g);
      strictEqual(mx("mmapx", g), "ok");
      strictEqual(mx("mprotect", g), "ok", "verified under generation 1");
    } finally {
      eng.setGeneration(0);
    }
    strictEqual(mx("mprotect", g), "EPERM", "back to generation 0: verified under 1");
    refused(g);
    // the switch cleared: nothing is checked
    eng.setPolicy(0);
    strictEqual(mx("mprotect", fresh(w.other, `${w.tmp}/late`)), "ok", "no hash rules");
    deepStrictEqual(drained(), []);
    say(`all cases in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  },
});

Deno.test({
  name: "mprotect(PROT_EXEC) without BPF LSM: the program loads and attaches, and refuses nothing",
  ignore: LSM_ON,
  fn: async () => {
    const w = await workDirs();
    await using eng = await loadEngine((s) => SECTIONS.includes(s));
    for (const sec of SECTIONS) {
      strictEqual(eng.attach.find((x) => x.section === sec)?.status, "attached", sec);
    }
    eng.map("aegis_deny_hash").update(
      hashKey(w.sha, 0),
      ruleValue(7, AEGIS_RULE_DENY, AEGIS_RT_HASH),
    );
    eng.setPolicy(AEGIS_POL_EXEC_HASH);
    strictEqual(mx("mprotect", fresh(w.other, `${w.tmp}/off`)), "ok", "never verified");
    strictEqual(mx("mprotect", w.bin), "ok", "the denied content");
    deepStrictEqual(hashBlocks(eng.records()), []);
  },
});
