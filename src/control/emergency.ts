/**
 * Emergency disable, the kill switch (docs/control.md): one word in the pinned
 * config map makes every hook report AUDIT instead of denying. This module
 * flips it with the audit trail the contract asks for:
 *
 * 1. the reason is required, cleaned (control characters, 512-byte cap)
 *    and hashed as given (src/control/reason.ts);
 * 2. the state directory's owner and mode are checked;
 * 3. an exclusive lock (flock on control.lock, with a timeout) serialises
 *    operators and the daemon;
 * 4. a toggle to the state already in force changes nothing and writes
 *    nothing (ok, changed: false);
 * 5. the log is checked writable, the kernel flag flips, one JSON line is
 *    appended to control_log.jsonl and fsynced — if that fails the flag is
 *    put back and the toggle fails; control_state.json is rewritten
 *    atomically (same rule); a control_change event goes to the bus;
 * 6. more than 10 transitions within 60 s is a toggle storm: a warning,
 *    `storm_*` fields and the storm metric.
 *
 * The kernel flag is the truth for "is it active"; the state file records
 * who changed it, when and why, and the transition history for storm
 * detection across processes (the CLI without a daemon uses this same
 * class on the pinned map).
 *
 * @module
 */
import { z } from "zod";
import type { AegisEvent, Caller, EventBus } from "../contracts.ts";
import { AegisError } from "../errors.ts";
import { literal, log } from "../log.ts";
import { writeFileAtomic } from "../policy/atomic.ts";
import { ControlLog, type ControlLogOptions } from "./control_log.ts";
import { type CallerSource, callerSource, describeCaller } from "./caller.ts";
import { acquireLock, DEFAULT_LOCK_TIMEOUT_MS } from "./lock.ts";
import { checkPrivateFile, ensurePrivateDir } from "./perms.ts";
import { cleanReason } from "./reason.ts";

/** SHA-256 of no bytes: the reason_sha256 of an empty reason. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/**
 * The storm fields of a control_change event: ours (`storm_transitions_60s`)
 * and the C++ agent's names for the same facts.
 */
function stormFields(transitions: number) {
  return {
    storm_active: transitions > STORM_THRESHOLD,
    storm_transitions_60s: transitions,
    storm_transitions_in_window: transitions,
    storm_threshold: STORM_THRESHOLD,
    storm_window_seconds: STORM_WINDOW_MS / 1000,
  };
}

/** Transitions within {@link STORM_WINDOW_MS} above which a storm is reported. */
export const STORM_THRESHOLD = 10;
export const STORM_WINDOW_MS = 60_000;

export const CONTROL_STATE_FILE = "control_state.json";
export const CONTROL_LOG_FILE = "control_log.jsonl";
export const CONTROL_LOCK_FILE = "control.lock";

/** The kernel's emergency word (AEGIS_CFG_EMERGENCY_DISABLE), or a fake in tests. */
export interface EmergencyFlag {
  get(): boolean;
  set(on: boolean): void;
}

/** What {@link EmergencyControl} needs. */
export interface EmergencyDeps {
  stateDir: string;
  flag: EmergencyFlag;
  bus?: EventBus;
  /** node_name in events and logs (default: the host name) */
  nodeName?: string;
  /** wall clock in ms (default Date.now) */
  now?: () => number;
  lockTimeoutMs?: number;
  /** owner the state directory and files must have (default: this process's uid) */
  ownerUid?: number;
  /** rotation of control_log.jsonl */
  logOptions?: Omit<ControlLogOptions, "ownerUid">;
  /** the log writer (tests inject one that fails) */
  controlLog?: ControlLog;
}

/** control_state.json. */
export const ControlStateSchema = z.object({
  schema_version: z.literal(1),
  emergency_disable: z.boolean(),
  since_unix: z.number().int().nullable(),
  reason: z.string().nullable(),
  reason_sha256: z.string().nullable(),
  /** who: `source` "kernel" (control-socket peer), "self" (the CLI), "unknown" (uid/pid -1) */
  changed_by: z.object({
    uid: z.number().int(),
    pid: z.number().int(),
    source: z.enum(["kernel", "self", "unknown"]).optional(),
  }).nullable(),
  node_name: z.string(),
  transitions_total: z.number().int().nonnegative(),
  /** ms timestamps of the transitions inside the storm window */
  recent_transitions_unix_ms: z.array(z.number()),
  storm_active: z.boolean(),
  updated_at_unix: z.number().int(),
});
export type ControlState = z.infer<typeof ControlStateSchema>;

/** emergency-status (CLI, GET /emergency/status). */
export interface EmergencyStatus {
  /** the kernel flag now */
  active: boolean;
  since_unix: number | null;
  reason: string | null;
  reason_sha256: string | null;
  changed_by: (Caller & { source?: CallerSource }) | null;
  node_name: string;
  transitions_total: number;
  transitions_60s: number;
  storm_active: boolean;
  /** false when control_state.json disagrees with the kernel flag (e.g. the pins were recreated) */
  state_consistent: boolean;
  /** why the state file could not be used, if it could not */
  state_error: string | null;
}

/** The answer of {@link EmergencyControl.toggle}. */
export interface ToggleResult {
  ok: true;
  changed: boolean;
  control: "emergency_disable";
  action: "disable" | "enable";
  /** the emergency flag after the call */
  active: boolean;
  prev_active: boolean;
  reason: string;
  reason_sha256: string;
  changed_at_unix: number;
  storm_active: boolean;
  transitions_60s: number;
}

/** For /metrics (the shape renderMetrics takes as `emergency`). */
export interface EmergencyCounters {
  /** the kernel flag: emergency disable on */
  active: boolean;
  /** transitions ever recorded in control_state.json */
  transitions: number;
  /** more than 10 transitions within the last 60 s */
  stormActive: boolean;
}

/** The kill switch with its audit trail. */
export class EmergencyControl {
  readonly stateDir: string;
  readonly statePath: string;
  readonly lockPath: string;
  readonly log: ControlLog;
  readonly #flag: EmergencyFlag;
  readonly #bus: EventBus | undefined;
  readonly #node: string;
  readonly #now: () => number;
  readonly #lockTimeoutMs: number;
  readonly #owner: number | undefined;

  constructor(deps: EmergencyDeps) {
    this.stateDir = deps.stateDir;
    this.statePath = `${deps.stateDir}/${CONTROL_STATE_FILE}`;
    this.lockPath = `${deps.stateDir}/${CONTROL_LOCK_FILE}`;
    this.#owner = deps.ownerUid;
    this.log = deps.controlLog ??
      new ControlLog(`${deps.stateDir}/${CONTROL_LOG_FILE}`, {
        ...deps.logOptions,
        ownerUid: deps.ownerUid,
      });
    this.#flag = deps.flag;
    this.#bus = deps.bus;
    this.#node = deps.nodeName ?? safeHostname();
    this.#now = deps.now ?? Date.now;
    this.#lockTimeoutMs = deps.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  }

  #checkDir(): void {
    ensurePrivateDir(this.stateDir, { what: "state directory", ownerUid: this.#owner });
  }

  /** control_state.json, or null when absent; throws CONTROL_STATE_INVALID when unusable. */
  readState(): ControlState | null {
    if (!checkPrivateFile(this.statePath, "control state file", this.#owner)) return null;
    let parsed: unknown;
    try {
      parsed = JSON.parse(Deno.readTextFileSync(this.statePath));
    } catch (e) {
      throw new AegisError(
        "CONTROL_STATE_INVALID",
        `The control state file "${this.statePath}" is not JSON: ${(e as Error).message}`,
        { cause: e },
      );
    }
    const r = ControlStateSchema.safeParse(parsed);
    if (!r.success) {
      throw new AegisError(
        "CONTROL_STATE_INVALID",
        `The control state file "${this.statePath}" is malformed: ${
          r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ")
        }`,
      );
    }
    return r.data;
  }

  #recent(state: ControlState | null, nowMs: number): number[] {
    return (state?.recent_transitions_unix_ms ?? []).filter((t) =>
      t > nowMs - STORM_WINDOW_MS && t <= nowMs
    );
  }

  /** The kill switch now: the kernel flag plus who set it, when and why. */
  status(): EmergencyStatus {
    const active = this.#flag.get();
    let state: ControlState | null = null;
    let stateError: string | null = null;
    try {
      state = this.readState();
    } catch (e) {
      stateError = (e as Error).message;
    }
    const recent = this.#recent(state, this.#now());
    return {
      active,
      since_unix: state?.since_unix ?? null,
      reason: state?.reason ?? null,
      reason_sha256: state?.reason_sha256 ?? null,
      changed_by: state?.changed_by ?? null,
      node_name: this.#node,
      transitions_total: state?.transitions_total ?? 0,
      transitions_60s: recent.length,
      storm_active: recent.length > STORM_THRESHOLD,
      state_consistent: stateError === null && (state?.emergency_disable ?? false) === active,
      state_error: stateError,
    };
  }

  /**
   * At the daemon's start: make the kernel flag agree with
   * control_state.json, the record of the last completed toggle. Fresh maps
   * (a reboot, pins removed) start with the flag off although an operator
   * switched enforcement off; a process killed between setting the flag and
   * writing its record leaves the flag on without one. The file wins, and
   * the change is logged and emitted as a control_change (the action that
   * was applied, `reconciled_at_start: true`, the agent as caller) — never
   * silent. Null when they already agree, or when there is no usable file
   * (the flag is then left as it is and status() says why).
   */
  reconcileAtStart(): { active: boolean; prevActive: boolean } | null {
    let state: ControlState | null;
    try {
      state = this.readState();
    } catch (e) {
      log("control").warn(
        literal(`emergency state not reconciled at start: ${(e as Error).message}`),
      );
      return null;
    }
    const want = state?.emergency_disable ?? false;
    const prev = this.#flag.get();
    if (prev === want) return null;
    this.#flag.set(want);
    const nowMs = this.#now();
    const recent = this.#recent(state, nowMs);
    const event: AegisEvent = {
      type: "control_change",
      event_version: 1,
      control: "emergency_disable",
      action: want ? "disable" : "enable",
      reconciled_at_start: true,
      enabled: want,
      prev_enabled: prev,
      changed_at_unix: Math.floor(nowMs / 1000),
      // the caller is the agent itself (the owner of its state: this process's uid)
      uid: this.#owner ?? Deno.uid() ?? 0,
      pid: Deno.pid,
      caller_source: "agent",
      node_name: this.#node,
      // the recorded toggle's reason ("" when the flag was on without a record)
      reason: state?.reason ?? "",
      reason_sha256: state?.reason_sha256 ?? EMPTY_SHA256,
      ...stormFields(recent.length),
      since_unix: state?.since_unix ?? null,
      changed_by: state?.changed_by ?? null,
    };
    log("control").warn(
      literal(
        want
          ? `emergency disable was active (since ${state?.since_unix}, reason "${state?.reason}") ` +
            `but the kernel flag was off (fresh maps, e.g. after a reboot): switched it on ` +
            `again; enforcement stays OFF until "aegisbpf emergency-enable"`
          : `the kernel emergency flag was on without a record in ${this.statePath} (a toggle ` +
            `interrupted before it was recorded): switched it off; enforcement is ON`,
      ),
      { ...event },
    );
    this.#bus?.emit(event);
    return { active: want, prevActive: prev };
  }

  /** For /metrics: transitions so far and whether a storm is on. */
  counters(): EmergencyCounters {
    const s = this.status();
    return { active: s.active, transitions: s.transitions_total, stormActive: s.storm_active };
  }

  /**
   * Switch emergency disable on (`disable` true: enforcement off) or off.
   * Throws a UsageError for a missing reason, UNSAFE_PATH for an unsafe
   * state directory, EMERGENCY_LOCKED when another operator holds the lock,
   * CONTROL_LOG_FAILED / CONTROL_STATE_FAILED when the audit trail cannot
   * be written (the kernel flag is then as it was before the call).
   */
  async toggle(disable: boolean, rawReason: string, caller: Caller): Promise<ToggleResult> {
    const reason = await cleanReason(rawReason);
    this.#checkDir();
    const lock = await acquireLock(this.lockPath, this.#lockTimeoutMs, this.#owner);
    try {
      return this.#toggleLocked(disable, reason, caller);
    } finally {
      lock.release();
    }
  }

  #toggleLocked(
    disable: boolean,
    reason: { text: string; sha256: string },
    caller: Caller,
  ): ToggleResult {
    const lg = log("control");
    const nowMs = this.#now();
    const nowUnix = Math.floor(nowMs / 1000);
    const action = disable ? "disable" : "enable";
    const source = callerSource(caller);
    let state: ControlState | null = null;
    try {
      state = this.readState();
    } catch (e) {
      // a corrupt state file must not jam the kill switch; an unsafe one does refuse
      if (!(e instanceof AegisError) || e.code !== "CONTROL_STATE_INVALID") throw e;
      lg.warn(literal(`${e.message}; it will be rewritten (storm history starts afresh)`));
    }
    const prev = this.#flag.get();
    if (prev === disable) {
      const recent = this.#recent(state, nowMs);
      lg.info(
        literal(
          `emergency ${action} by ${describeCaller(caller)}: already ${
            disable ? "active" : "inactive"
          }; nothing changed`,
        ),
        { action, uid: caller.uid, pid: caller.pid, caller_source: source, changed: false },
      );
      return {
        ok: true,
        changed: false,
        control: "emergency_disable",
        action,
        active: prev,
        prev_active: prev,
        reason: reason.text,
        reason_sha256: reason.sha256,
        changed_at_unix: nowUnix,
        storm_active: recent.length > STORM_THRESHOLD,
        transitions_60s: recent.length,
      };
    }

    // the audit trail must be writable before enforcement changes
    this.log.preflight();
    const recent = [...this.#recent(state, nowMs), nowMs];
    const storm = recent.length > STORM_THRESHOLD;
    const event: AegisEvent = {
      type: "control_change",
      event_version: 1,
      control: "emergency_disable",
      action,
      enabled: disable,
      prev_enabled: prev,
      changed_at_unix: nowUnix,
      uid: caller.uid,
      pid: caller.pid,
      caller_source: source,
      node_name: this.#node,
      reason: reason.text,
      reason_sha256: reason.sha256,
      ...stormFields(recent.length),
    };

    this.#flag.set(disable);
    try {
      this.log.append(event);
    } catch (e) {
      this.#revert(prev, "the control log could not be written");
      throw e;
    }
    const next: ControlState = {
      schema_version: 1,
      emergency_disable: disable,
      since_unix: nowUnix,
      reason: reason.text,
      reason_sha256: reason.sha256,
      changed_by: { uid: caller.uid, pid: caller.pid, source },
      node_name: this.#node,
      transitions_total: (state?.transitions_total ?? 0) + 1,
      recent_transitions_unix_ms: recent,
      storm_active: storm,
      updated_at_unix: nowUnix,
    };
    try {
      writeFileAtomic(
        this.statePath,
        new TextEncoder().encode(JSON.stringify(next, null, 2) + "\n"),
        0o600,
      );
    } catch (e) {
      this.#revert(prev, "the control state file could not be written");
      // the log already holds the transition: record that it was undone
      try {
        this.log.append({ ...event, type: "control_revert", enabled: prev, prev_enabled: disable });
      } catch { /* the error below says what happened */ }
      throw new AegisError(
        "CONTROL_STATE_FAILED",
        `Cannot write the control state file "${this.statePath}": ${(e as Error).message}. ` +
          `Emergency ${action} was undone; enforcement is as it was.`,
        { cause: e },
      );
    }

    lg.warn(
      literal(
        `emergency ${action} by ${describeCaller(caller)}: enforcement is now ${
          disable ? "OFF (hooks report AUDIT)" : "ON"
        }`,
      ),
      { ...event },
    );
    if (storm) {
      lg.warn(
        literal(
          `emergency toggle storm: ${recent.length} transitions within 60 s ` +
            `(more than ${STORM_THRESHOLD}); check who is toggling and why`,
        ),
        { storm_transitions_60s: recent.length },
      );
    }
    this.#bus?.emit(event);
    return {
      ok: true,
      changed: true,
      control: "emergency_disable",
      action,
      active: disable,
      prev_active: prev,
      reason: reason.text,
      reason_sha256: reason.sha256,
      changed_at_unix: nowUnix,
      storm_active: storm,
      transitions_60s: recent.length,
    };
  }

  #revert(prev: boolean, why: string): void {
    try {
      this.#flag.set(prev);
    } catch (e) {
      log("control").error(
        literal(`could not put the emergency flag back after ${why}: ${(e as Error).message}`),
      );
      throw new AegisError(
        "CONTROL_REVERT_FAILED",
        `${why}, and the kernel emergency flag could not be put back to ` +
          `${prev ? "active" : "inactive"}: ${
            (e as Error).message
          }. Check "aegisbpf emergency-status".`,
        { cause: e },
      );
    }
  }
}

function safeHostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

/**
 * The fields the C++ agent's `emergency-status --json` and emergency-*
 * `--json` replies carry (its published schema), computed from ours and
 * added beside them, so dashboards and scripts written for it read ours
 * as they are. `kernel_state_known`: the kernel flag was read (an agent is
 * loaded); `state_present`: a change was ever recorded. Fields without a
 * value are left out (the schema has no nulls).
 */
export function emergencyContractFields(s: {
  active: boolean;
  kernelKnown: boolean;
  statePresent: boolean;
  changedAtUnix: number | null;
  changedBy: Caller | null;
  nodeName?: string;
  reason: string | null;
  reasonSha256: string | null;
  transitionsTotal?: number;
  stormActive: boolean;
  transitionsInWindow: number;
}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ok: true,
    enabled: s.active,
    kernel_state_known: s.kernelKnown,
    state_present: s.statePresent,
    storm_active: s.stormActive,
    storm_transitions_in_window: s.transitionsInWindow,
    storm_threshold: STORM_THRESHOLD,
    storm_window_seconds: STORM_WINDOW_MS / 1000,
  };
  if (s.kernelKnown) out.kernel_enabled = s.active;
  if (s.changedAtUnix !== null) out.changed_at_unix = s.changedAtUnix;
  if (s.changedBy && s.changedBy.uid >= 0) out.uid = s.changedBy.uid;
  if (s.changedBy && s.changedBy.pid >= 0) out.pid = s.changedBy.pid;
  if (s.nodeName !== undefined) out.node_name = s.nodeName;
  if (s.reason !== null) out.reason = s.reason;
  if (s.reasonSha256 !== null) out.reason_sha256 = s.reasonSha256;
  if (s.transitionsTotal !== undefined) out.transitions_total = s.transitionsTotal;
  return out;
}

/** Our status plus the C++ fields, without nulls (`emergency-status --json`). */
export function emergencyStatusJson(
  s: EmergencyStatus & { agent_loaded: boolean; via: string },
): Record<string, unknown> {
  const ours = Object.fromEntries(Object.entries(s).filter(([, v]) => v !== null));
  return {
    ...ours,
    ...emergencyContractFields({
      active: s.active,
      kernelKnown: s.agent_loaded,
      statePresent: s.since_unix !== null,
      changedAtUnix: s.since_unix,
      changedBy: s.changed_by,
      nodeName: s.node_name,
      reason: s.reason,
      reasonSha256: s.reason_sha256,
      transitionsTotal: s.transitions_total,
      stormActive: s.storm_active,
      transitionsInWindow: s.transitions_60s,
    }),
  };
}

/** A toggle's reply plus the C++ fields (emergency-disable / -enable `--json`). */
export function toggleJson(r: ToggleResult, via: string): Record<string, unknown> {
  return {
    ...r,
    via,
    ...emergencyContractFields({
      active: r.active,
      kernelKnown: true,
      statePresent: true,
      changedAtUnix: r.changed_at_unix,
      changedBy: null,
      reason: r.reason,
      reasonSha256: r.reason_sha256,
      stormActive: r.storm_active,
      transitionsInWindow: r.transitions_60s,
    }),
  };
}
