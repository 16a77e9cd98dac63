/**
 * Kernel records for tests (src/events/volume_test.ts,
 * src/daemon/event_ring_test.ts): one process, its exec, one file rule's
 * block, one network rule's; each field can be overridden.
 *
 * @module
 */
import type { ExecRecord, FileBlockRecord, NetBlockRecord, ProcInfo } from "./decode.ts";

const PROC: ProcInfo & { ktimeNs: number } = {
  pid: 100,
  tid: 100,
  ppid: 1,
  uid: 0,
  cgid: 42,
  startTime: 5,
  parentStartTime: 1,
  comm: "cat",
  ktimeNs: 1_000,
};

/** The process's exec. */
export function execRecord(over: Partial<ExecRecord> = {}): ExecRecord {
  return { ...PROC, kind: "exec", ...over };
}

/** A BLOCK of file rule 7 (file_open, /etc/shadow). */
export function fileBlock(over: Partial<FileBlockRecord> = {}): FileBlockRecord {
  return {
    ...PROC,
    kind: "file_block",
    action: 1,
    hook: 0,
    ruleId: 7,
    ino: 99,
    dev: 8,
    ruleFlags: 0,
    path: "/etc/shadow",
    ...over,
  };
}

/** A BLOCK of network rule 9 (socket_connect to 10.0.0.1:443/tcp). */
export function netBlock(over: Partial<NetBlockRecord> = {}): NetBlockRecord {
  return {
    ...PROC,
    kind: "net_block",
    comm: "curl",
    action: 1,
    hook: 3,
    ruleId: 9,
    family: 2,
    addr: "10.0.0.1",
    port: 443,
    proto: 6,
    ruleType: 3,
    ...over,
  };
}
