import { deepStrictEqual as eq, ok, strictEqual } from "node:assert/strict";
import {
  AEGIS_POL_EXEC_ALLOWLIST,
  AEGIS_POL_EXEC_HASH,
  AEGIS_POL_EXEC_RULES,
  AEGIS_POL_EXEC_TRUSTED,
  AEGIS_POL_FILE_RULES,
  AEGIS_POL_RUNTIME_DEPS,
  AEGIS_RT_COMM,
  AEGIS_RT_HASH,
  AEGIS_RT_INODE,
  AEGIS_RT_IP_PORT,
  AEGIS_RULE_DENY,
} from "../bpf/abi_gen.ts";
import { ipPortKey, parseIpPort } from "../bpf/net_codec.ts";
import { commKey } from "../bpf/exec_codec.ts";
import { hashKey, inodeKey, policyValue, ruleValue, u32Key } from "../bpf/rule_codec.ts";
import {
  applyCompiled,
  generationCounts,
  liveGeneration,
  setBuiltinRules,
} from "../policy/generations.ts";
import { policyShow } from "../policy/apply.ts";
import { fakeMaps } from "../policy/fake_maps_testing.ts";
import {
  CANARY_COMM,
  CANARY_EXEC_RULE_ID,
  CANARY_FILE_RULE_ID,
  CANARY_HASH_RULE_ID,
  CANARY_NET_RULE_ID,
  ensureExecSentinel,
  ensureHashSentinel,
  ensureInGeneration,
  ensureSentinel,
  execCanaryEntry,
  FILE_CANARY_FLAGS,
  fileCanaryEntry,
  HASH_CANARY_FLAGS,
  HASH_CANARY_NAME,
  HASH_SENTINEL_SHA256,
  HASH_SENTINEL_TEXT,
  hashCanaryEntry,
  hashListsOn,
  isCanaryRuleId,
  judgeConnect,
  judgeKernel,
  judgeProbe,
  KERNEL_SWITCHES,
  NET_CANARY_FLAGS,
  netCanaryEntry,
} from "./canary.ts";

Deno.test("judgeProbe: only EPERM is a passing proof", () => {
  strictEqual(
    judgeProbe({ code: 2, signal: null, stderr: "sh: 1: cannot open x: Operation not permitted\n" })
      .denied,
    true,
  );
  const opened = judgeProbe({ code: 0, signal: null, stderr: "" });
  strictEqual(opened.denied, false);
  ok(opened.detail.includes("did not deny"));
  const eacces = judgeProbe({ code: 2, signal: null, stderr: "cannot open x: Permission denied" });
  strictEqual(eacces.denied, false);
  ok(eacces.detail.includes("not with EPERM") && eacces.detail.includes("Permission denied"));
  strictEqual(judgeProbe({ code: 1, signal: "SIGKILL", stderr: "" }).denied, false);
  strictEqual(
    judgeProbe({ code: 1, signal: null, stderr: "Operation not permitted", timedOut: true }).denied,
    false,
    "a timeout is never a pass",
  );
  const long = judgeProbe({ code: 2, signal: null, stderr: "x".repeat(10_000) });
  ok(long.detail.length < 300, "the detail is bounded");
});

Deno.test("canary rule ids sit between policy line numbers and live rules", () => {
  ok(isCanaryRuleId(CANARY_FILE_RULE_ID));
  ok(!isCanaryRuleId(1) && !isCanaryRuleId((1 << 24) - 1) && !isCanaryRuleId(0x8000_0000));
});

const SENT = { path: "/run/aegisbpf/proof/file.sentinel", dev: 7, ino: 42n };

Deno.test("ensureInGeneration: writes the entry and the flag once, repairs a removal", () => {
  const f = fakeMaps();
  f.get("aegis_policy").update(u32Key(1), policyValue(4)); // network rules already
  const e = fileCanaryEntry(SENT);
  const m = { map: (n: string) => f.get(n) };
  strictEqual(ensureInGeneration(m, 1, e, FILE_CANARY_FLAGS), true);
  eq(
    f.get("aegis_deny_inode").lookup(inodeKey(7, 42n, 1)),
    ruleValue(
      CANARY_FILE_RULE_ID,
      AEGIS_RULE_DENY,
      AEGIS_RT_INODE,
    ),
  );
  eq(f.get("aegis_policy").lookup(u32Key(1)), policyValue(4 | AEGIS_POL_FILE_RULES));
  strictEqual(ensureInGeneration(m, 1, e, FILE_CANARY_FLAGS), false, "nothing to do");
  f.get("aegis_deny_inode").delete(inodeKey(7, 42n, 1));
  strictEqual(ensureInGeneration(m, 1, e, FILE_CANARY_FLAGS), true, "repaired");
});

Deno.test("apply carries the built-in canary into every generation; counts leave it out", () => {
  const f = fakeMaps();
  const user = {
    flags: 0,
    entries: [{
      map: "aegis_deny_ip4" as const,
      key: (gen: number) => new Uint8Array([gen, 0, 0, 0, 1, 2, 3, 4]),
      value: ruleValue(5, AEGIS_RULE_DENY, 3),
    }],
  };
  setBuiltinRules(() => ({ flags: FILE_CANARY_FLAGS, entries: [fileCanaryEntry(SENT)] }));
  try {
    for (let i = 0; i < 3; i++) {
      applyCompiled(f.maps, user);
      const gen = liveGeneration(f.maps);
      ok(f.get("aegis_deny_inode").lookup(inodeKey(7, 42n, gen)), `canary in generation ${gen}`);
      ok(!f.get("aegis_deny_inode").lookup(inodeKey(7, 42n, 1 - gen)), "old generation removed");
      const pv = f.get("aegis_policy").lookup(u32Key(gen))!;
      strictEqual(pv[0] & AEGIS_POL_FILE_RULES, AEGIS_POL_FILE_RULES, "file hooks look up");
    }
    eq(generationCounts(f.maps).aegis_deny_inode, [0, 0], "the canary is not a policy rule");
    strictEqual(
      policyShow(f.maps, "/nonexistent", { rules: () => [] } as never).rule_entries
        .aegis_deny_inode,
      0,
    );
  } finally {
    setBuiltinRules(null);
  }
  applyCompiled(f.maps, user);
  strictEqual(f.get("aegis_deny_inode").data.size, 0, "without a provider nothing is carried");
});

Deno.test("ensureSentinel: 0600 regular file in a 0700 dir; anything else is replaced", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const a = ensureSentinel(`${dir}/proof`);
    const st = Deno.lstatSync(a.path);
    ok(st.isFile);
    strictEqual(st.mode! & 0o777, 0o600);
    strictEqual(Deno.statSync(`${dir}/proof`).mode! & 0o777, 0o700);
    strictEqual(ensureSentinel(`${dir}/proof`).ino, a.ino, "kept when sound");
    Deno.chmodSync(a.path, 0o644);
    const b = ensureSentinel(`${dir}/proof`);
    strictEqual(Deno.lstatSync(b.path).mode! & 0o777, 0o600, "a wrong mode is replaced");
    Deno.removeSync(b.path);
    Deno.symlinkSync("/etc/passwd", b.path);
    const c = ensureSentinel(`${dir}/proof`);
    ok(Deno.lstatSync(c.path).isFile, "a symlink is replaced, its target untouched");
    ok(Deno.statSync("/etc/passwd").isFile);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("exec canary: a 0700 script that only exits, a deny_comm rule of its basename", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const x = ensureExecSentinel(`${dir}/proof`);
    strictEqual(x.path, `${dir}/proof/${CANARY_COMM}`);
    strictEqual(Deno.readTextFileSync(x.path), "#!/bin/sh\nexit 0\n");
    strictEqual(Deno.statSync(x.path).mode! & 0o777, 0o700);
    Deno.writeTextFileSync(x.path, "#!/bin/sh\nrm -rf /\n"); // tampered: same mode, other content
    ensureExecSentinel(`${dir}/proof`);
    strictEqual(Deno.readTextFileSync(x.path), "#!/bin/sh\nexit 0\n", "replaced");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  strictEqual(CANARY_COMM.length, 15, "the whole name fits a comm (TASK_COMM_LEN - 1)");
  const e = execCanaryEntry();
  strictEqual(e.map, "aegis_deny_comm");
  eq(e.key(1), commKey(CANARY_COMM, 1));
  eq(e.value, ruleValue(CANARY_EXEC_RULE_ID, AEGIS_RULE_DENY, AEGIS_RT_COMM));
  const ran = judgeProbe({ code: 0, signal: null, stderr: "" }, "exec");
  ok(!ran.denied && ran.detail.includes("ran the exec sentinel"));
  const denied = judgeProbe(
    { code: 126, signal: null, stderr: "sh: line 1: /x: Operation not permitted" },
    "exec",
  );
  eq(denied, { denied: true, detail: "exec of the sentinel denied with EPERM" });
});

Deno.test("exec-hash canary: a unique 0700 script, a deny_binary_hash rule of its SHA-256 that sets no switch", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const x = ensureHashSentinel(`${dir}/proof`);
    strictEqual(x.path, `${dir}/proof/${HASH_CANARY_NAME}`);
    strictEqual(Deno.readTextFileSync(x.path), HASH_SENTINEL_TEXT);
    strictEqual(Deno.statSync(x.path).mode! & 0o777, 0o700);
    const d = await crypto.subtle.digest("SHA-256", Deno.readFileSync(x.path));
    const hex = Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
    strictEqual(hex, HASH_SENTINEL_SHA256, "the constant is the file's SHA-256");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  // the comm canary must not refuse it first: another comm (15 bytes of the name)
  ok(HASH_CANARY_NAME.slice(0, 15) !== CANARY_COMM);
  const e = hashCanaryEntry();
  strictEqual(e.map, "aegis_deny_hash");
  eq(e.key(1), hashKey(HASH_SENTINEL_SHA256, 1));
  eq(e.value, ruleValue(CANARY_HASH_RULE_ID, AEGIS_RULE_DENY, AEGIS_RT_HASH));
  ok(isCanaryRuleId(CANARY_HASH_RULE_ID));
  strictEqual(HASH_CANARY_FLAGS, 0, "the canary never turns hashing on");
  // proven only while the exec program hashes (aegis_id_lists(flags, 0))
  for (const f of [AEGIS_POL_EXEC_HASH, AEGIS_POL_EXEC_ALLOWLIST, AEGIS_POL_EXEC_TRUSTED]) {
    ok(hashListsOn(f | AEGIS_POL_FILE_RULES), String(f));
  }
  ok(!hashListsOn(AEGIS_POL_FILE_RULES | AEGIS_POL_RUNTIME_DEPS | AEGIS_POL_EXEC_RULES));
  // carried into every generation without a switch
  const f = fakeMaps();
  setBuiltinRules(() => ({ flags: HASH_CANARY_FLAGS, entries: [e] }));
  try {
    applyCompiled(f.maps, { flags: AEGIS_POL_FILE_RULES, entries: [] });
    const gen = liveGeneration(f.maps);
    ok(f.maps("aegis_deny_hash").lookup(hashKey(HASH_SENTINEL_SHA256, gen)) !== null);
    eq(f.maps("aegis_policy").lookup(u32Key(gen)), policyValue(AEGIS_POL_FILE_RULES));
    // the agent's, not the policy's: not counted as a rule (policy show, restore's compare)
    eq(generationCounts(f.maps).aegis_deny_hash, [0, 0]);
  } finally {
    setBuiltinRules(null);
  }
});

Deno.test("network canary: a deny_ip4_port rule on the loopback canary address; only EPERM passes", () => {
  const e = netCanaryEntry();
  strictEqual(e.map, "aegis_deny_ip4_port");
  eq(e.key(1), ipPortKey(parseIpPort("127.77.65.71:9:tcp"), 1).key);
  eq(e.value, ruleValue(CANARY_NET_RULE_ID, AEGIS_RULE_DENY, AEGIS_RT_IP_PORT));
  ok(isCanaryRuleId(CANARY_NET_RULE_ID));
  const f = fakeMaps();
  setBuiltinRules(() => ({ flags: NET_CANARY_FLAGS, entries: [e] }));
  try {
    applyCompiled(f.maps, { flags: 0, entries: [] });
    eq(generationCounts(f.maps).aegis_deny_ip4_port, [0, 0], "the canary is not a policy rule");
  } finally {
    setBuiltinRules(null);
  }
  const base = { cgroupErrno: 0, connectErrno: 1, socketErrno: null, timedOut: false };
  eq(judgeConnect(base), { denied: true, detail: "connect to 127.77.65.71:9 denied with EPERM" });
  for (const errno of [0, 111, 115]) {
    const j = judgeConnect({ ...base, connectErrno: errno });
    strictEqual(j.denied, false);
    ok(j.detail.includes("was let through") && j.detail.includes("did not deny"), j.detail);
  }
  ok(judgeConnect({ ...base, connectErrno: 13 }).detail.includes("not with EPERM: EACCES"));
  ok(judgeConnect({ ...base, cgroupErrno: 13 }).detail.includes("could not leave"));
  ok(judgeConnect({ ...base, cgroupErrno: -1 }).detail.includes("never reported"));
  ok(judgeConnect({ ...base, timedOut: true }).detail.includes("time limit"));
  ok(judgeConnect({ ...base, connectErrno: null, socketErrno: 24 }).detail.includes("EMFILE"));
});

Deno.test("kernel surface: EPERM counts only with a deny counted by the agent's own hook", () => {
  const [ptrace, mod, bpf] = KERNEL_SWITCHES;
  const probe = (results: Record<string, number | null>) => ({
    cgroupErrno: 0,
    results,
    timedOut: false,
  });
  const all = judgeKernel(probe({ ptrace: 1, module: 1, bpf: 1 }), KERNEL_SWITCHES, {
    ptrace: 1n,
    module: 1n,
    bpf: 2n,
  });
  strictEqual(all.denied, true);
  eq(all.deniedBy, [ptrace, mod, bpf]);
  strictEqual(
    all.detail,
    "ptrace attach denied with EPERM; module load (init_module) denied with EPERM; bpf() denied with EPERM",
  );
  const yama = judgeKernel(probe({ ptrace: 1 }), [ptrace], { ptrace: 0n });
  strictEqual(yama.denied, false);
  ok(
    yama.detail.includes("not from the agent") && yama.detail.includes("deny_ptrace is not proven"),
  );
  const through = judgeKernel(probe({ module: 8, bpf: 0 }), [mod, bpf], {});
  strictEqual(through.denied, false);
  ok(
    through.detail.includes("module load (init_module) was let through (ENOEXEC)"),
    through.detail,
  );
  ok(through.detail.includes("bpf() was let through (it succeeded)"), through.detail);
  ok(judgeKernel(probe({ ptrace: null }), [ptrace], {}).detail.includes("could not be attempted"));
  ok(
    judgeKernel({ cgroupErrno: 13, results: {}, timedOut: false }, [bpf], {}).detail.includes(
      "could not leave",
    ),
  );
});
