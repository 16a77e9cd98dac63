/**
 * Recorded events (our JSON lines, docs/telemetry.md) read back for
 * `explain` and `simulate`: one line → a {@link ReplayEvent} with what the
 * decision needs, or a clear error naming what is wrong. Never trusts the
 * input: a line is at most {@link MAX_EVENT_LINE} bytes, JSON keys such as
 * `__proto__` are plain data (JSON.parse makes own properties and the
 * schemas pick known fields), unknown fields are ignored, and an event of a
 * type that names no decision is reported as such.
 *
 * u64 fields (`cgid`, `start_time`, `ino`, `ktime_ns`) are decimal strings
 * today and may become JSON integers: both are accepted, and an integer
 * above 2^53 is read from its source text, never rounded.
 *
 * @module
 */
import { z } from "zod";
import { parseIp } from "../bpf/net_codec.ts";
import { MAPPING_HASH_HOOKS } from "./decide_file.ts";

/** Longest event line read (a block event is below 8 KiB: its path is at most 4096 bytes). */
export const MAX_EVENT_LINE = 64 * 1024;

/** The event types a decision can be replayed for, by surface. */
export const FILE_BLOCK_TYPES = new Set(["block"]);
export const NET_TYPES = new Map<string, "connect" | "bind" | "sendmsg">([
  ["net_connect_block", "connect"],
  ["net_bind_block", "bind"],
  ["net_sendmsg_block", "sendmsg"],
]);
export const KERNEL_TYPES = new Map<string, "ptrace" | "module" | "bpf">([
  ["kernel_ptrace_block", "ptrace"],
  ["kernel_module_block", "module"],
  ["kernel_bpf_block", "bpf"],
]);
/** Event types the agent writes that carry no decision (skipped, counted by type). */
export const NON_DECISION_TYPES = new Set([
  "state_change",
  "control_change",
  "policy_restored",
  "policy_canary",
  "self_test",
  "log",
  "open",
]);

/** A u64 as the events write it: a decimal string or a JSON integer (→ decimal string). */
const U64 = z.union([
  z.string().regex(/^\d{1,20}$/, "not a decimal u64"),
  z.number().int().nonnegative().refine(Number.isSafeInteger, "integer above 2^53 was rounded"),
  z.bigint().nonnegative(),
]).transform((v) => String(v));

const Action = z.string().max(16);

export const Proc = z.object({
  type: z.string().max(64),
  cgid: U64.optional(),
  cgroup_path: z.string().max(4096).nullable().optional(),
  comm: z.string().max(64).optional(),
  pid: z.number().int().optional(),
});

export const FileBlock = Proc.extend({
  action: Action,
  hook: z.string().max(32),
  rule_id: z.number().int().nonnegative(),
  ino: U64,
  dev: z.number().int().min(0).max(0xffffffff),
  path: z.string().max(4096).nullable().optional(),
  /** hash block records: the executed file's SHA-256 */
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /**
   * hash block records: "hash" (deny_binary_hash), "hash_allowlist" (not on
   * the allowlist), "hash_trusted" (not on the trusted list) or
   * "hash_unverified" (mprotect of a file not verified)
   */
  rule_type: z.string().max(16).optional(),
});

export const NetBlock = Proc.extend({
  action: Action,
  hook: z.string().max(32).optional(),
  rule_id: z.number().int().nonnegative(),
  rule_type: z.string().max(16).optional(),
  family: z.enum(["ipv4", "ipv6"]),
  addr: z.string().max(64),
  port: z.number().int().min(0).max(65535),
  protocol: z.union([z.string().max(8), z.number().int()]),
});

const KernelBlock = Proc.extend({
  action: Action,
  hook: z.string().max(32).optional(),
  rule_id: z.number().int().nonnegative().optional(),
});

// --- the fast path -------------------------------------------------------------
// The schemas above define what is accepted. Checking a million lines with them
// costs most of a replay, so the common, well-formed shapes are checked by hand
// first: each check below accepts a subset of what its schema accepts and gives the
// same output; anything else goes to the schema (which accepts it or says why not).
// src/policy/event_input_test.ts compares both on fixtures.

type Obj = Record<string, unknown>;

function u64(v: unknown): string | undefined {
  if (typeof v === "string") return v.length <= 20 && /^\d+$/.test(v) ? v : undefined;
  if (typeof v === "number") return Number.isSafeInteger(v) && v >= 0 ? String(v) : undefined;
  return undefined;
}
const str = (v: unknown, max: number): v is string => typeof v === "string" && v.length <= max;
const int = (v: unknown, min: number, max: number): v is number =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= min && v <= max;
const optStr = (v: unknown, max: number) => v === undefined || str(v, max);
const nullStr = (v: unknown, max: number) => v === undefined || v === null || str(v, max);

/** Proc fields by hand, or null (then the schema decides). */
function fastProc(o: Obj): z.infer<typeof Proc> | null {
  const cgid = o.cgid === undefined ? undefined : u64(o.cgid);
  if (o.cgid !== undefined && cgid === undefined) return null;
  if (!str(o.type, 64) || !nullStr(o.cgroup_path, 4096) || !optStr(o.comm, 64)) return null;
  if (o.pid !== undefined && !int(o.pid, -Infinity, Infinity)) return null;
  return {
    type: o.type,
    cgid,
    cgroup_path: o.cgroup_path as string | null | undefined,
    comm: o.comm as string | undefined,
    pid: o.pid as number | undefined,
  };
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

export function fastFileBlock(o: Obj): z.infer<typeof FileBlock> | null {
  const p = fastProc(o);
  const ino = u64(o.ino);
  if (!p || ino === undefined || !str(o.action, 16) || !str(o.hook, 32)) return null;
  if (!int(o.rule_id, 0, Infinity) || !int(o.dev, 0, 0xffffffff) || !nullStr(o.path, 4096)) {
    return null;
  }
  if (o.sha256 !== undefined && !(typeof o.sha256 === "string" && SHA256_HEX.test(o.sha256))) {
    return null;
  }
  if (!optStr(o.rule_type, 16)) return null;
  return {
    ...p,
    action: o.action,
    hook: o.hook,
    rule_id: o.rule_id,
    ino,
    dev: o.dev,
    path: o.path as string | null | undefined,
    ...(o.sha256 !== undefined ? { sha256: o.sha256 as string } : {}),
    ...(o.rule_type !== undefined ? { rule_type: o.rule_type as string } : {}),
  };
}

export function fastNetBlock(o: Obj): z.infer<typeof NetBlock> | null {
  const p = fastProc(o);
  if (!p || !str(o.action, 16) || !optStr(o.hook, 32) || !int(o.rule_id, 0, Infinity)) return null;
  if (!optStr(o.rule_type, 16) || (o.family !== "ipv4" && o.family !== "ipv6")) return null;
  if (!str(o.addr, 64) || !int(o.port, 0, 65535)) return null;
  if (!str(o.protocol, 8) && !int(o.protocol, -Infinity, Infinity)) return null;
  return {
    ...p,
    action: o.action,
    hook: o.hook as string | undefined,
    rule_id: o.rule_id,
    rule_type: o.rule_type as string | undefined,
    family: o.family,
    addr: o.addr,
    port: o.port,
    protocol: o.protocol as string | number,
  };
}

/** The fast check, else the schema. */
function check<T>(
  fast: (o: Obj) => T | null,
  schema: z.ZodType<T>,
  v: unknown,
): { success: true; data: T } | { success: false; error: z.ZodError } {
  const f = fast(v as Obj);
  if (f !== null) return { success: true, data: f };
  const r = schema.safeParse(v);
  return r.success ? { success: true, data: r.data } : { success: false, error: r.error };
}

/** What happened to the recorded operation. */
export type Happened = "blocked" | "audited" | "allowed";

interface Common {
  /** 1-based line in the input (1 for a single event) */
  line: number;
  type: string;
  cgid: string | null;
  cgroupPath: string | null;
  comm: string | null;
  happened: Happened;
  /** the recorded action (BLOCK, AUDIT, TERM, …) or null for an exec event */
  action: string | null;
  /** the rule id the kernel wrote, or null */
  ruleId: number | null;
}

export type ReplayEvent =
  & Common
  & (
    | {
      surface: "file";
      hook: string;
      dev: number;
      ino: string;
      path: string | null;
    }
    | {
      surface: "exec";
      /** "bprm_check_security" (a recorded exec block) or "exec" (an exec that happened) */
      hook: string;
      /** null for an exec event (it carries no inode) */
      dev: number | null;
      ino: string | null;
      /** bprm->filename, or the comm for a comm rule's record; null for an exec event */
      path: string | null;
      /** the executed file's SHA-256 (a hash block record); null when not known */
      sha256: string | null;
      /**
       * a record of a content not on the allowlist (rule_type "hash_allowlist",
       * rule id 0); its sha256 is all zero when the file had no SHA-256
       */
      unlisted: boolean;
      /**
       * a mprotect record of a file no executable mapping verified (rule_type
       * "hash_unverified", rule id 0, sha256 all zero; docs/engine.md)
       */
      unverified: boolean;
      /**
       * a record of a content not on [trusted_exec_hash] (rule_type
       * "hash_trusted", rule id 0); all zero: no SHA-256 under [ima_fail_closed]
       */
      untrusted: boolean;
    }
    | {
      surface: "net";
      hook: "connect" | "bind" | "sendmsg";
      family: 4 | 6;
      addr: Uint8Array;
      port: number;
      /** 6, 17, else 0 (as the kernel's rules name protocols) */
      proto: number;
      ruleType: string | null;
    }
    | { surface: "kernel"; hook: string; what: "ptrace" | "module" | "bpf" }
  );

/** Why a line is not a replayable event. `skip`: a known type without a decision. */
export interface EventProblem {
  kind: "error" | "skip" | "unknown_type";
  line: number;
  /** the event type when it had one */
  type: string | null;
  message: string;
}

export type EventParse = { ok: true; event: ReplayEvent } | { ok: false; problem: EventProblem };

/** Exec hooks of a `block` record (the rest are file hooks). */
const EXEC_HOOKS = new Set([
  "bprm_check_security",
  "bprm_check_hash",
  "tp_execve",
  ...MAPPING_HASH_HOOKS,
]);

function happenedOf(action: string): Happened {
  return action === "AUDIT" ? "audited" : "blocked";
}

function zodMessage(e: z.ZodError): string {
  const i = e.issues[0];
  const where = i?.path.length ? `field "${i.path.join(".")}"` : "event";
  return `${where}: ${i?.message ?? "invalid"}`;
}

/** A run of 16+ digits after `:` `,` `[`: a JSON integer JSON.parse could round. */
const LONG_INT = /[:,[]\s*-?\d{16,}/;

/** JSON.parse that keeps integers above 2^53 exact (as bigint) when the line has any. */
export function parseJsonLine(text: string): unknown {
  if (!LONG_INT.test(text)) return JSON.parse(text);
  return JSON.parse(
    text,
    (_k, v, ctx?: { source?: string }) =>
      typeof v === "number" && !Number.isSafeInteger(v) && ctx?.source &&
        /^\d+$/.test(ctx.source)
        ? BigInt(ctx.source)
        : v,
  );
}

function problem(kind: EventProblem["kind"], line: number, type: string | null, message: string) {
  return { ok: false as const, problem: { kind, line, type, message } };
}

/** Printable, bounded text of an untrusted value for a message. */
export function quoteBounded(s: string, max = 64): string {
  const t = s.length > max ? `${s.slice(0, max)}…` : s;
  return JSON.stringify(t);
}

/** One parsed JSON value (a line) → a replayable event or the reason it is not one. */
export function eventFromJson(v: unknown, line: number): EventParse {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return problem("error", line, null, "not a JSON object");
  }
  const rawType = (v as Record<string, unknown>).type;
  if (typeof rawType !== "string") {
    return problem("error", line, null, 'no "type" field (a string)');
  }
  const type = rawType;
  const common = (p: z.infer<typeof Proc>) => ({
    line,
    type,
    cgid: p.cgid ?? null,
    cgroupPath: p.cgroup_path ?? null,
    comm: p.comm ?? null,
  });
  if (type === "exec") {
    const r = check(fastProc, Proc, v);
    if (!r.success) return problem("error", line, type, zodMessage(r.error));
    return {
      ok: true,
      event: {
        ...common(r.data),
        surface: "exec",
        hook: "exec",
        happened: "allowed",
        action: null,
        ruleId: null,
        dev: null,
        ino: null,
        path: null,
        sha256: null,
        unlisted: false,
        unverified: false,
        untrusted: false,
      },
    };
  }
  if (FILE_BLOCK_TYPES.has(type)) {
    const r = check(fastFileBlock, FileBlock, v);
    if (!r.success) return problem("error", line, type, zodMessage(r.error));
    const d = r.data;
    const f = {
      ...common(d),
      hook: d.hook,
      happened: happenedOf(d.action),
      action: d.action,
      ruleId: d.rule_id,
      dev: d.dev,
      ino: d.ino,
      path: d.path ?? null,
    };
    return {
      ok: true,
      event: EXEC_HOOKS.has(d.hook)
        ? {
          ...f,
          surface: "exec",
          sha256: d.sha256 ?? null,
          unlisted: d.rule_type === "hash_allowlist",
          unverified: d.rule_type === "hash_unverified",
          untrusted: d.rule_type === "hash_trusted",
        }
        : { ...f, surface: "file" },
    };
  }
  const netHook = NET_TYPES.get(type);
  if (netHook) {
    const r = check(fastNetBlock, NetBlock, v);
    if (!r.success) return problem("error", line, type, zodMessage(r.error));
    const d = r.data;
    let ip;
    try {
      ip = parseIp(d.addr);
    } catch {
      return problem(
        "error",
        line,
        type,
        `field "addr": ${quoteBounded(d.addr)} is not an address`,
      );
    }
    const want = d.family === "ipv4" ? 4 : 6;
    if (ip.family !== want) {
      return problem(
        "error",
        line,
        type,
        `field "addr": ${quoteBounded(d.addr)} is not an ${d.family} address`,
      );
    }
    const p = typeof d.protocol === "number"
      ? d.protocol
      : d.protocol === "tcp"
      ? 6
      : d.protocol === "udp"
      ? 17
      : Number(d.protocol);
    return {
      ok: true,
      event: {
        ...common(d),
        surface: "net",
        hook: netHook,
        happened: happenedOf(d.action),
        action: d.action,
        ruleId: d.rule_id,
        family: want,
        addr: ip.bytes,
        port: d.port,
        proto: p === 6 || p === 17 ? p : 0,
        ruleType: d.rule_type ?? null,
      },
    };
  }
  const what = KERNEL_TYPES.get(type);
  if (what) {
    const r = KernelBlock.safeParse(v);
    if (!r.success) return problem("error", line, type, zodMessage(r.error));
    const d = r.data;
    return {
      ok: true,
      event: {
        ...common(d),
        surface: "kernel",
        hook: d.hook ?? what,
        what,
        happened: happenedOf(d.action),
        action: d.action,
        ruleId: d.rule_id ?? 0,
      },
    };
  }
  if (NON_DECISION_TYPES.has(type)) {
    return problem("skip", line, type, `a "${type}" event records no rule decision`);
  }
  return problem(
    "unknown_type",
    line,
    type.slice(0, 64),
    `unknown event type ${quoteBounded(type)}: not one of exec, block, net_*_block, ` +
      "kernel_*_block",
  );
}

/** One line of text → a replayable event or the reason it is not one. */
export function eventFromLine(text: string, line: number): EventParse {
  let v: unknown;
  try {
    v = parseJsonLine(text);
  } catch (e) {
    return problem("error", line, null, `invalid JSON (${(e as Error).message})`);
  }
  return eventFromJson(v, line);
}
