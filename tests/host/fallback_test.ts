/**
 * Host tier (root): the fallbacks for kernels without BPF LSM, on this
 * host's kernel (BPF LSM programs do not load here; fentry does).
 * src/bpf/fallback.ts loads the tracepoint programs (sys_exit_openat…,
 * tp_btf/sched_process_exec, sys_enter_connect); they share the LSM
 * surfaces' maps and decisions but only observe:
 *  - a deny rule's match is reported (AUDIT record) and the syscall goes on;
 *  - with AEGIS_CFG_SIGNAL armed, the matching process gets the signal
 *    (KILL record, AEGIS_CNT_SIGNAL_SENT); never in audit mode.
 * The test process itself never opens a denied file while a signal is
 * armed (bpf_send_signal would kill the test runner): only children do.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_KILL,
  AEGIS_ACT_TERM,
  AEGIS_CFG_AUDIT_ONLY,
  AEGIS_HOOK_TP_CONNECT,
  AEGIS_HOOK_TP_EXECVE,
  AEGIS_HOOK_TP_OPENAT,
  AEGIS_POL_FILE_RULES,
  AEGIS_POL_NET_RULES,
  AEGIS_RT_INODE,
  AEGIS_RT_IP,
  AEGIS_RULE_DENY,
} from "../../src/bpf/abi_gen.ts";
import { FALLBACK_PROGRAMS, FallbackSet, type FallbackSignal } from "../../src/bpf/fallback.ts";
import { cidrKey, ipKey, parseCidr, parseIp } from "../../src/bpf/net_codec.ts";
import { inodeKey, kernelDev, policyValue, ruleValue, u32Key } from "../../src/bpf/rule_codec.ts";
import type { FileBlockRecord, KernelRecord, NetBlockRecord } from "../../src/events/decode.ts";
import { EventDrain } from "../../src/events/drain.ts";
import { toHex } from "../../src/util/bytes.ts";

const RUNTIME = await Deno.makeTempDir({ prefix: "aegis-rt-" });
globalThis.addEventListener("unload", () => Deno.removeSync(RUNTIME, { recursive: true }));

const RULE_ID = 7301;
const DENY_INODE = ruleValue(RULE_ID, AEGIS_RULE_DENY, AEGIS_RT_INODE);

interface Ctx {
  fb: FallbackSet;
  /** Records drained and decoded since the last call. */
  records(): KernelRecord[];
  dir: string;
}

/** Load the fallback set (signal off), run `fn`, clean everything up. */
async function withFallback(name: string, fn: (c: Ctx) => Promise<void>): Promise<void> {
  using shim = await openEmbeddedShim(`${RUNTIME}/${name}`);
  using fb = FallbackSet.load(shim, await bpfObjectBytes(), { signal: 0, pinRoot: null });
  using ring = shim.openRing(fb.eventsFd());
  const pending: KernelRecord[] = [];
  const drain = new EventDrain(ring, (r) => pending.push(r));
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "aegis-fb-" });
  try {
    await fn({
      fb,
      dir,
      records: () => {
        drain.drainNow();
        return pending.splice(0);
      },
    });
  } finally {
    fb.setSignal(0);
    await Deno.remove(dir, { recursive: true });
  }
}

function denyInode(fb: FallbackSet, path: string): number {
  const st = Deno.statSync(path);
  fb.map("aegis_deny_inode").update(inodeKey(kernelDev(st.dev), st.ino!, 0), DENY_INODE);
  fb.map("aegis_policy").update(u32Key(0), policyValue(AEGIS_POL_FILE_RULES));
  return st.ino!;
}

function fileBlocks(recs: KernelRecord[], ino: number): FileBlockRecord[] {
  return recs.filter((r): r is FileBlockRecord => r.kind === "file_block" && r.ino === ino);
}

async function catFile(path: string): Promise<Deno.CommandStatus & { pid: number }> {
  const child = new Deno.Command("/bin/cat", { args: [path], stdout: "null", stderr: "null" })
    .spawn();
  const st = await child.status;
  return { ...st, pid: child.pid };
}

Deno.test("fallback: every program attaches on this kernel, nothing else is loaded", async () => {
  await withFallback("attach", ({ fb }) => {
    const attached = fb.attach.filter((a) => a.status === "attached");
    deepStrictEqual(attached.map((a) => a.program).sort(), [...FALLBACK_PROGRAMS].sort());
    deepStrictEqual(attached.map((a) => a.section).sort(), [
      "tp/syscalls/sys_enter_connect",
      "tp/syscalls/sys_exit_open",
      "tp/syscalls/sys_exit_openat",
      "tp/syscalls/sys_exit_openat2",
      "tp_btf/sched_process_exec",
    ]);
    // Nothing else of the object was loaded (no LSM program: they fail here).
    ok(fb.attach.every((a) => a.status === "attached" || a.status === "not_loaded"));
    return Promise.resolve();
  });
});

Deno.test("fallback: a denied file opens (observe only) and an AUDIT record names it", async () => {
  await withFallback("open", async ({ fb, dir, records }) => {
    const denied = `${dir}/denied`;
    const other = `${dir}/other`;
    await Deno.writeTextFile(denied, "secret\n");
    await Deno.writeTextFile(other, "fine\n");
    const otherIno = Deno.statSync(other).ino!;
    const ino = denyInode(fb, denied);
    records();
    strictEqual(await Deno.readTextFile(denied), "secret\n"); // signal is 0: safe here
    strictEqual(await Deno.readTextFile(other), "fine\n");
    const recs = records();
    const hits = fileBlocks(recs, ino);
    ok(hits.length >= 1, `no file_block record for the denied inode (${recs.length} records)`);
    const r = hits[0];
    strictEqual(r.action, AEGIS_ACT_AUDIT);
    strictEqual(r.hook, AEGIS_HOOK_TP_OPENAT);
    strictEqual(r.ruleId, RULE_ID);
    strictEqual(r.pid, Deno.pid);
    strictEqual(r.dev, kernelDev(Deno.statSync(denied).dev));
    deepStrictEqual(fileBlocks(recs, otherIno), [], "a file without a rule gave a record");
    strictEqual(fb.counters().signalsSent, 0n);
  });
});

Deno.test("fallback: exec of a denied binary runs and an AUDIT record has hook TP_EXECVE", async () => {
  await withFallback("exec", async ({ fb, dir, records }) => {
    const bin = `${dir}/x`;
    await Deno.copyFile("/bin/true", bin);
    await Deno.chmod(bin, 0o755);
    const ino = denyInode(fb, bin);
    records();
    const child = new Deno.Command(bin, { stdout: "null", stderr: "null" }).spawn();
    const st = await child.status;
    ok(st.success, `the denied binary did not run: ${JSON.stringify(st)}`);
    const hits = fileBlocks(records(), ino);
    const exec = hits.filter((r) => r.hook === AEGIS_HOOK_TP_EXECVE);
    strictEqual(exec.length, 1, `exec records: ${JSON.stringify(hits)}`);
    strictEqual(hits.length, 1, "exec opens the binary inside execve: no open record");
    strictEqual(exec[0].action, AEGIS_ACT_AUDIT);
    strictEqual(exec[0].ruleId, RULE_ID);
    strictEqual(exec[0].pid, child.pid);
    strictEqual(exec[0].path, bin); // bprm->filename
    strictEqual(exec[0].comm, "x"); // already the new image
  });
});

Deno.test("fallback: connect to a denied address goes through with an AUDIT net_block record", async () => {
  await withFallback("connect", async ({ fb, records }) => {
    const addr = "127.0.0.77";
    const other = "127.0.0.78";
    const k = ipKey(parseIp(addr), 0);
    fb.map(k.map).update(k.key, ruleValue(RULE_ID + 1, AEGIS_RULE_DENY, AEGIS_RT_IP));
    fb.map("aegis_policy").update(u32Key(0), policyValue(AEGIS_POL_NET_RULES));
    using lis = Deno.listen({ hostname: addr, port: 0 });
    using lis2 = Deno.listen({ hostname: other, port: 0 });
    const port = (lis.addr as Deno.NetAddr).port;
    const port2 = (lis2.addr as Deno.NetAddr).port;
    records();
    const conn = await Deno.connect({ hostname: addr, port });
    conn.close();
    (await lis.accept()).close();
    const conn2 = await Deno.connect({ hostname: other, port: port2 });
    conn2.close();
    (await lis2.accept()).close();
    const nets = records().filter((r): r is NetBlockRecord => r.kind === "net_block");
    strictEqual(nets.length, 1, `net records: ${JSON.stringify(nets)}`);
    const r = nets[0];
    strictEqual(r.addr, addr);
    strictEqual(r.port, port);
    strictEqual(r.family, 2);
    strictEqual(r.proto, 6);
    strictEqual(r.action, AEGIS_ACT_AUDIT);
    strictEqual(r.hook, AEGIS_HOOK_TP_CONNECT);
    strictEqual(r.ruleType, AEGIS_RT_IP);
    strictEqual(r.ruleId, RULE_ID + 1);
    strictEqual(r.pid, Deno.pid);
  });
});

Deno.test("fallback: with SIGKILL armed, a child opening the denied file is killed", async () => {
  await withFallback("kill", async ({ fb, dir, records }) => {
    const denied = `${dir}/denied`;
    const other = `${dir}/other`;
    await Deno.writeTextFile(denied, "secret\n");
    await Deno.writeTextFile(other, "fine\n");
    const ino = denyInode(fb, denied);
    records();
    const before = fb.counters().signalsSent;
    let killed, fine;
    fb.setSignal(9);
    try {
      killed = await catFile(denied);
      fine = await catFile(other);
    } finally {
      fb.setSignal(0);
    }
    strictEqual(killed.signal, "SIGKILL", `cat of the denied file: ${JSON.stringify(killed)}`);
    ok(!killed.success);
    ok(fine.success, `cat of a file without a rule: ${JSON.stringify(fine)}`);
    const hits = fileBlocks(records(), ino);
    strictEqual(hits.length, 1, JSON.stringify(hits));
    strictEqual(hits[0].action, AEGIS_ACT_KILL);
    strictEqual(hits[0].hook, AEGIS_HOOK_TP_OPENAT);
    strictEqual(hits[0].pid, killed.pid);
    strictEqual(hits[0].comm, "cat");
    strictEqual(fb.counters().signalsSent - before, 1n);
  });
});

Deno.test("fallback: SIGTERM armed gives a TERM record and a terminated child", async () => {
  await withFallback("term", async ({ fb, dir, records }) => {
    const denied = `${dir}/denied`;
    await Deno.writeTextFile(denied, "secret\n");
    const ino = denyInode(fb, denied);
    records();
    let st;
    fb.setSignal(15);
    try {
      st = await catFile(denied);
    } finally {
      fb.setSignal(0);
    }
    strictEqual(st.signal, "SIGTERM", JSON.stringify(st));
    const hits = fileBlocks(records(), ino);
    strictEqual(hits.length, 1);
    strictEqual(hits[0].action, AEGIS_ACT_TERM);
    strictEqual(fb.counters().signalsSent, 1n);
  });
});

Deno.test("fallback: audit mode with SIGKILL armed sends no signal", async () => {
  await withFallback("audit", async ({ fb, dir, records }) => {
    const denied = `${dir}/denied`;
    await Deno.writeTextFile(denied, "secret\n");
    const ino = denyInode(fb, denied);
    const cfg = fb.map("aegis_config");
    cfg.setU64(AEGIS_CFG_AUDIT_ONLY, 1n);
    records();
    let st;
    fb.setSignal(9);
    try {
      st = await catFile(denied);
    } finally {
      fb.setSignal(0);
      cfg.setU64(AEGIS_CFG_AUDIT_ONLY, 0n);
    }
    ok(st.success, `cat was hurt in audit mode: ${JSON.stringify(st)}`);
    strictEqual(st.signal, null);
    const hits = fileBlocks(records(), ino);
    strictEqual(hits.length, 1);
    strictEqual(hits[0].action, AEGIS_ACT_AUDIT);
    strictEqual(hits[0].pid, st.pid);
    strictEqual(fb.counters().signalsSent, 0n);
  });
});

Deno.test("fallback: only signals 0, 2, 9 and 15 are accepted", async () => {
  await withFallback("badsig", ({ fb }) => {
    for (const bad of [1, 3, 19, -9]) {
      let code = "";
      try {
        fb.setSignal(bad as FallbackSignal);
      } catch (e) {
        code = (e as { code?: string }).code ?? String(e);
      }
      strictEqual(code, "USAGE", `signal ${bad}`);
    }
    return Promise.resolve();
  });
});

Deno.test("maps: keys() and entries() dump a real hash map in one call, past the first 1,024", async () => {
  await withFallback("dump", ({ fb }) => {
    const m = fb.map("aegis_deny_inode");
    strictEqual(m.keys().length, 0);
    // more than the first room (1,024: the dump grows, -ENOSPC once) and than one batch
    // of the shim's BPF_MAP_LOOKUP_BATCH (4,096 entries)
    const n = 9000;
    const keys = Array.from({ length: n }, (_, i) => inodeKey(7, 1000 + i, i & 1));
    const values = keys.map((_, i) => ruleValue(i + 1, 1, 1));
    m.updateBatch(keys, values);
    const got = m.entries();
    strictEqual(got.keys.length, n);
    const want = new Map(keys.map((k, i) => [toHex(k), toHex(values[i])]));
    got.keys.forEach((k, i) => strictEqual(toHex(got.values[i]), want.get(toHex(k)), toHex(k)));
    strictEqual(new Set(got.keys.map(toHex)).size, n, "no key twice");
    strictEqual(m.keys().length, n);
    strictEqual(m.count(), n, "count() without key objects");
    m.deleteBatch(keys);
    strictEqual(m.entries().keys.length, 0);
    // an LPM trie has no batch lookup: the shim walks it key by key
    const cidr = fb.map("aegis_deny_cidr4");
    const ck = Array.from(
      { length: 300 },
      (_, i) => cidrKey(parseCidr(`10.${i >> 8}.${i & 255}.0/24`), 0).key,
    );
    for (const k of ck) cidr.update(k, ruleValue(1, 1, 4));
    const cg = cidr.entries();
    strictEqual(cg.keys.length, ck.length);
    strictEqual(new Set(cg.keys.map(toHex)).size, ck.length);
    deepStrictEqual(new Set(cg.keys.map(toHex)), new Set(ck.map(toHex)));
    for (const k of ck) cidr.delete(k);
    strictEqual(cidr.keys().length, 0);
    strictEqual(cidr.count(), 0);
    return Promise.resolve();
  });
});
