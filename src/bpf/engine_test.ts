import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { IMA_HASH_HELPER, layoutTag, lsmHookOf, planPrograms, refusedOptional } from "./engine.ts";

const PROGS = [
  "aegis_trace_openat",
  "aegis_trace_exec",
  "aegis_file_open",
  "aegis_inode_permission",
  "aegis_socket_connect",
];
const SECS = [
  "tp/syscalls/sys_enter_openat",
  "tp/sched/sched_process_exec",
  "lsm/file_open",
  "lsm/inode_permission",
  "lsm/socket_connect",
];

Deno.test("lsmHookOf: lsm and sleepable lsm sections only", () => {
  strictEqual(lsmHookOf("lsm/file_open"), "file_open");
  strictEqual(lsmHookOf("lsm.s/bprm_check_security"), "bprm_check_security");
  strictEqual(lsmHookOf("tp/sched/sched_process_exec"), null);
});

Deno.test("planPrograms: file hook choice, exec telemetry, BTF availability", () => {
  const all = () => true;
  deepStrictEqual(
    planPrograms(PROGS, SECS, { fileHook: "file", execEvents: true }, all).map((p) => p.program),
    ["aegis_trace_exec", "aegis_file_open", "aegis_socket_connect"],
  );
  deepStrictEqual(
    planPrograms(PROGS, SECS, { fileHook: "inode", execEvents: false }, all).map((p) => p.program),
    ["aegis_inode_permission", "aegis_socket_connect"],
  );
  deepStrictEqual(
    planPrograms(PROGS, SECS, { fileHook: "both" }, all).map((p) => p.program),
    ["aegis_file_open", "aegis_inode_permission", "aegis_socket_connect"],
  );
  const noNet = (n: string) => n !== "bpf_lsm_socket_connect";
  deepStrictEqual(
    planPrograms(PROGS, SECS, { fileHook: "file" }, noNet).map((p) => [p.program, p.available]),
    [["aegis_file_open", true], ["aegis_socket_connect", false]],
  );
});

Deno.test("layoutTag: the first 8 bytes of the fingerprint", () => {
  strictEqual(layoutTag("0123456789abcdef" + "0".repeat(48)), 0x0123456789abcdefn);
});

Deno.test("planPrograms: the self-protection guards only with selfProtect, whatever the file hook", () => {
  const progs = [...PROGS, "aegis_self_file_open", "aegis_self_pin_open"];
  const secs = [...SECS, "lsm/file_open", "lsm/inode_permission"];
  const all = () => true;
  const names = (o: Parameters<typeof planPrograms>[2]) =>
    planPrograms(progs, secs, o, all).map((p) => p.program);
  deepStrictEqual(names({ fileHook: "file" }), ["aegis_file_open", "aegis_socket_connect"]);
  deepStrictEqual(names({ fileHook: "inode", selfProtect: true }), [
    "aegis_inode_permission",
    "aegis_socket_connect",
    "aegis_self_file_open",
    "aegis_self_pin_open",
  ]);
});

Deno.test("refusedOptional: only an optional program the load error names is dropped", () => {
  const load = ["aegis_file_open", "aegis_bprm_check", "aegis_bprm_hash"];
  // a verifier rejection (VerifierError) and a libbpf log line (NativeCallError)
  deepStrictEqual(
    refusedOptional(load, 'The kernel verifier rejected BPF program "aegis_bprm_hash" (EINVAL): …'),
    ["aegis_bprm_hash"],
  );
  deepStrictEqual(
    refusedOptional(load, "libbpf: prog 'aegis_bprm_hash': BPF program load failed: EINVAL"),
    ["aegis_bprm_hash"],
  );
  // another program's refusal (the host's EPERM on the first LSM program): no retry
  deepStrictEqual(
    refusedOptional(load, "libbpf: prog 'aegis_file_open': BPF program load failed: EPERM"),
    [],
  );
  // not planned: nothing to drop; a longer name that contains it does not count
  deepStrictEqual(refusedOptional(["aegis_file_open"], '"aegis_bprm_hash"'), []);
  deepStrictEqual(refusedOptional(load, "prog 'aegis_bprm_hash_v2' failed"), []);
});

Deno.test("planPrograms: without bpf_ima_file_hash in the BTF the exec-hash programs are not planned (the content scan serves instead)", () => {
  const progs = ["aegis_bprm_check", "aegis_bprm_hash", "aegis_mmap_hash", "aegis_mprotect_hash"];
  const secs = [
    "lsm/bprm_check_security",
    "lsm.s/bprm_check_security",
    "lsm.s/mmap_file",
    "lsm/file_mprotect",
  ];
  const avail = (has: (n: string) => boolean) =>
    planPrograms(progs, secs, { fileHook: "file" }, has).map((p) => [p.program, p.available]);
  deepStrictEqual(avail(() => true), progs.map((p) => [p, true]));
  deepStrictEqual(avail((n) => n !== IMA_HASH_HELPER), [
    ["aegis_bprm_check", true],
    ["aegis_bprm_hash", false],
    ["aegis_mmap_hash", false],
    ["aegis_mprotect_hash", false],
  ]);
});
