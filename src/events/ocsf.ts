/**
 * `run --event-format ocsf`: each stamped event (./envelope.ts) as an OCSF
 * 1.3 event (docs/telemetry.md, "OCSF output", has the mapping table):
 *
 * | our event                              | OCSF class (class_uid, category)     | activity_id           |
 * | -------------------------------------- | ------------------------------------ | --------------------- |
 * | `exec`                                 | Process Activity (1007, System 1)    | 1 Launch              |
 * | `block`, hook `bprm_check_security`    | Process Activity (1007, System 1)    | 1 Launch              |
 * | `block`, file hooks                    | File System Activity (1001, System 1)| 14 Open (99 copy-up)  |
 * | `open` (`--trace-opens`)               | File System Activity (1001, System 1)| 14 Open               |
 * | `net_connect_block`                    | Network Activity (4001, Network 4)   | 1 Open                |
 * | `net_sendmsg_block`                    | Network Activity (4001, Network 4)   | 6 Traffic             |
 * | `net_bind_block`                       | Network Activity (4001, Network 4)   | 99 Other ("Bind")     |
 * | anything else                          | Base Event (0, Uncategorized 0)      | 99 Other              |
 *
 * `type_uid` is class_uid × 100 + activity_id; `time` is ms since the epoch
 * (`time_dt` keeps the ns text); `metadata.uid` is the `event_id`. A block's
 * `action` sets `action_id`/`disposition_id`: AUDIT → 1 Allowed / 15
 * Detected, BLOCK → 2 Denied / 2 Blocked, TERM/KILL/INT → on an LSM hook
 * (run --enforce-signal: denied, and signalled) 2 Denied / 2 Blocked, on a
 * fallback tracepoint (the call ran, the process was then signalled) 99
 * Other / 7 Custom Action. Fields without an OCSF attribute stay under `unmapped`, so
 * nothing of the event is lost.
 *
 * {@link OcsfEvent} is the zod schema of the subset emitted here; the tests
 * parse real mapped events with it.
 *
 * @module
 */
import { z } from "zod";
import type { AegisEvent } from "../contracts.ts";
import type { Envelope } from "./envelope.ts";

export const OCSF_VERSION = "1.3.0";

export const OCSF_CLASSES = {
  base: { class_uid: 0, category_uid: 0, class_name: "Base Event", category_name: "Uncategorized" },
  file: {
    class_uid: 1001,
    category_uid: 1,
    class_name: "File System Activity",
    category_name: "System Activity",
  },
  process: {
    class_uid: 1007,
    category_uid: 1,
    class_name: "Process Activity",
    category_name: "System Activity",
  },
  network: {
    class_uid: 4001,
    category_uid: 4,
    class_name: "Network Activity",
    category_name: "Network Activity",
  },
} as const;

// ---- the subset we emit, as zod (the contract the tests parse against) ----

const Int = z.number().int();
const UInt = Int.min(0);

const OcsfUser = z.object({ uid: z.string() });
const OcsfFile = z.object({
  name: z.string(),
  path: z.string().optional(),
  type_id: z.literal(0),
  uid: z.string().optional(),
  /** deny_binary_hash: the content that matched (algorithm_id 3 = SHA-256) */
  hashes: z.array(z.object({ algorithm_id: z.literal(3), value: z.string() })).optional(),
});
const OcsfProcess = z.object({
  pid: UInt,
  tid: UInt.optional(),
  uid: z.string(),
  name: z.string(),
  created_time: UInt,
  user: OcsfUser,
  parent_process: z.object({ pid: UInt }).optional(),
  file: OcsfFile.optional(),
});
const OcsfEndpoint = z.object({
  hostname: z.string().optional(),
  ip: z.string().optional(),
  port: Int.min(0).max(65535).optional(),
});

const Common = z.object({
  activity_id: Int,
  activity_name: z.string(),
  category_uid: Int,
  category_name: z.string(),
  class_uid: Int,
  class_name: z.string(),
  type_uid: Int,
  severity_id: Int.min(0).max(6),
  time: UInt,
  time_dt: z.string().regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/),
  metadata: z.object({
    version: z.literal(OCSF_VERSION),
    uid: z.string().min(1),
    product: z.object({
      name: z.literal("aegisbpf"),
      vendor_name: z.literal("aegisbpf"),
      version: z.string().min(1),
    }),
    log_name: z.string(),
  }),
  device: z.object({ hostname: z.string(), type_id: z.literal(0) }),
  message: z.string(),
  action_id: Int.optional(),
  action: z.string().optional(),
  disposition_id: Int.optional(),
  disposition: z.string().optional(),
  unmapped: z.record(z.string(), z.unknown()),
});

export const OcsfProcessActivity = Common.extend({
  class_uid: z.literal(1007),
  category_uid: z.literal(1),
  activity_id: z.literal(1),
  actor: z.object({ process: OcsfProcess }),
  process: z.object({ pid: UInt, name: z.string(), file: OcsfFile.optional() }),
});
export const OcsfFileActivity = Common.extend({
  class_uid: z.literal(1001),
  category_uid: z.literal(1),
  activity_id: z.union([z.literal(14), z.literal(99)]),
  actor: z.object({ process: OcsfProcess }),
  file: OcsfFile,
});
export const OcsfNetworkActivity = Common.extend({
  class_uid: z.literal(4001),
  category_uid: z.literal(4),
  activity_id: z.union([z.literal(1), z.literal(6), z.literal(99)]),
  actor: z.object({ process: OcsfProcess }),
  src_endpoint: OcsfEndpoint,
  dst_endpoint: OcsfEndpoint.optional(),
  connection_info: z.object({
    protocol_name: z.string(),
    protocol_ver_id: z.union([z.literal(4), z.literal(6)]),
    direction_id: z.union([z.literal(2), z.literal(99)]),
  }),
});
export const OcsfBaseEvent = Common.extend({
  class_uid: z.literal(0),
  category_uid: z.literal(0),
  activity_id: z.literal(99),
});

/** Every event `--event-format ocsf` writes is one of these. */
export const OcsfEvent = z.union([
  OcsfProcessActivity,
  OcsfFileActivity,
  OcsfNetworkActivity,
  OcsfBaseEvent,
]).refine((e) => e.type_uid === e.class_uid * 100 + e.activity_id, {
  message: "type_uid must be class_uid * 100 + activity_id",
});
export type OcsfEvent = z.infer<typeof OcsfEvent>;

// ---- the mapping --------------------------------------------------------

type Stamped = AegisEvent & Envelope;

const ACTIONS: Record<string, {
  action_id: number;
  action: string;
  disposition_id: number;
  disposition: string;
  severity_id: number;
}> = {
  AUDIT: {
    action_id: 1,
    action: "Allowed",
    disposition_id: 15,
    disposition: "Detected",
    severity_id: 2,
  },
  BLOCK: {
    action_id: 2,
    action: "Denied",
    disposition_id: 2,
    disposition: "Blocked",
    severity_id: 3,
  },
};
const SIGNALLED = {
  action_id: 99,
  action: "Other",
  disposition_id: 7,
  disposition: "Custom Action",
  severity_id: 3,
};

/**
 * What the kernel did about a block, in OCSF terms (absent for a non-block
 * event). A signal on an LSM hook came with the deny (run
 * --enforce-signal): Denied / Blocked; on a fallback tracepoint (hook
 * `tp_*`) it came instead of one: Other / Custom Action.
 */
function outcome(action: unknown, hook: unknown) {
  if (typeof action !== "string") return null;
  const known = ACTIONS[action];
  if (known) return known;
  return typeof hook === "string" && hook.startsWith("tp_") ? SIGNALLED : ACTIONS.BLOCK;
}

/** Fields with an OCSF attribute of their own: left out of `unmapped`. */
const MAPPED = new Set([
  "timestamp",
  "event_id",
  "host",
  "agent_version",
  "pid",
  "tid",
  "ppid",
  "uid",
  "exec_id",
  "comm",
  "sha256",
]);

function unmapped(e: Stamped): Record<string, unknown> {
  return Object.fromEntries(Object.entries(e).filter(([k]) => !MAPPED.has(k)));
}

/** ns text of an RFC 3339 timestamp → ms since the epoch (integer). */
function epochMs(timestamp: string): number {
  // the ms part only: "…T12:34:56.123456789Z" → "…T12:34:56.123Z"
  const m = /^(.{19}\.\d{3})\d*Z$/.exec(timestamp);
  const ms = m ? Date.parse(`${m[1]}Z`) : NaN;
  return Number.isFinite(ms) ? ms : 0;
}

function uintOr0(v: unknown): number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0;
}

/** The acting process: our process fields (every kernel event has them). */
function actorProcess(e: Stamped, clockOffsetNs: bigint) {
  const start = e.start_time;
  const startNs = typeof start === "number" || typeof start === "bigint" ? BigInt(start) : null;
  return {
    pid: uintOr0(e.pid),
    tid: uintOr0(e.tid),
    uid: String(e.exec_id ?? ""),
    name: String(e.comm ?? ""),
    // task start time is CLOCK_MONOTONIC ns: the same offset as the event's time
    created_time: startNs === null ? 0 : Number((startNs + clockOffsetNs) / 1_000_000n),
    user: { uid: String(e.uid ?? "") },
    parent_process: { pid: uintOr0(e.ppid) },
  };
}

function fileOf(e: Stamped) {
  const path = typeof e.path === "string" && e.path !== "" ? e.path : undefined;
  const name = path ? path.slice(path.lastIndexOf("/") + 1) : "";
  const ino = e.ino;
  const uid = typeof ino === "number" || typeof ino === "bigint"
    ? `${e.dev ?? 0}:${ino}`
    : undefined;
  const sha = typeof e.sha256 === "string" ? e.sha256 : undefined;
  return {
    name,
    ...(path ? { path } : {}),
    type_id: 0 as const,
    ...(uid ? { uid } : {}),
    ...(sha ? { hashes: [{ algorithm_id: 3 as const, value: sha }] } : {}),
  };
}

function netActivity(type: string): { id: number; name: string } {
  if (type === "net_sendmsg_block") return { id: 6, name: "Traffic" };
  if (type === "net_bind_block") return { id: 99, name: "Bind" };
  return { id: 1, name: "Open" };
}

/**
 * One stamped event as OCSF. `clockOffsetNs` turns the process start time
 * into wall-clock time (the envelope's). Never throws on a well-formed
 * stamped event; unknown fields go to `unmapped`.
 */
export function toOcsf(e: Stamped, clockOffsetNs: bigint): OcsfEvent {
  const base = {
    time: epochMs(e.timestamp),
    time_dt: e.timestamp,
    metadata: {
      version: OCSF_VERSION,
      uid: e.event_id,
      product: { name: "aegisbpf", vendor_name: "aegisbpf", version: e.agent_version },
      log_name: e.type,
    },
    device: { hostname: e.host, type_id: 0 as const },
    unmapped: unmapped(e),
  };
  const o = outcome(e.action, e.hook);
  const verdict = o
    ? {
      action_id: o.action_id,
      action: o.action,
      disposition_id: o.disposition_id,
      disposition: o.disposition,
    }
    : {};
  const severity_id = o ? o.severity_id : 1;
  const what = typeof e.action === "string" ? `${e.action} ` : "";
  const cls = (k: keyof typeof OCSF_CLASSES, activity_id: number, activity_name: string) => ({
    ...OCSF_CLASSES[k],
    activity_id,
    activity_name,
    type_uid: OCSF_CLASSES[k].class_uid * 100 + activity_id,
  });

  if (
    e.type === "exec" ||
    (e.type === "block" && (e.hook === "bprm_check_security" || e.hook === "bprm_check_hash"))
  ) {
    const actor = actorProcess(e, clockOffsetNs);
    const file = e.type === "block" ? fileOf(e) : undefined;
    return {
      ...cls("process", 1, "Launch"),
      ...base,
      severity_id,
      message: e.type === "exec"
        ? `exec ${actor.name} (pid ${actor.pid})`
        : `${what}exec of ${file?.path ?? file?.uid ?? "a denied binary"} by ${actor.name}`,
      ...verdict,
      actor: { process: actor },
      // the image being launched: the same task (exec keeps the pid)
      process: { pid: actor.pid, name: actor.name, ...(file ? { file } : {}) },
    } as OcsfEvent;
  }
  if (e.type === "block" || e.type === "open") {
    const copyUp = e.hook === "inode_copy_up";
    const file = fileOf(e);
    const actor = actorProcess(e, clockOffsetNs);
    return {
      ...(copyUp ? cls("file", 99, "Copy Up") : cls("file", 14, "Open")),
      ...base,
      severity_id,
      message: `${what}${copyUp ? "copy-up" : "open"} of ${
        file.path ?? file.uid ?? "a file"
      } by ${actor.name}`,
      ...verdict,
      actor: { process: actor },
      file,
    } as OcsfEvent;
  }
  if (
    e.type === "net_connect_block" || e.type === "net_sendmsg_block" ||
    e.type === "net_bind_block"
  ) {
    const act = netActivity(e.type);
    const actor = actorProcess(e, clockOffsetNs);
    const addr = typeof e.addr === "string" ? e.addr : undefined;
    const port = uintOr0(e.port);
    const bind = e.type === "net_bind_block";
    return {
      ...cls("network", act.id, act.name),
      ...base,
      severity_id,
      message: `${what}${bind ? "bind" : act.id === 6 ? "send" : "connect"} ${bind ? "on" : "to"} ${
        addr ?? "?"
      }:${port} by ${actor.name}`,
      ...verdict,
      actor: { process: actor },
      src_endpoint: bind ? { hostname: e.host, ip: addr, port } : { hostname: e.host },
      ...(bind ? {} : { dst_endpoint: { ip: addr, port } }),
      connection_info: {
        protocol_name: String(e.protocol ?? ""),
        protocol_ver_id: e.family === "ipv6" ? 6 : 4,
        // 2 Outbound; a bind has no direction (99 Other)
        direction_id: bind ? 99 : 2,
      },
    } as OcsfEvent;
  }
  return {
    ...cls("base", 99, "Other"),
    ...base,
    severity_id: e.type === "state_change" && e.state === "DEGRADED" ? 3 : o ? o.severity_id : 1,
    message: `${what}${e.type}`,
    ...verdict,
  } as OcsfEvent;
}
