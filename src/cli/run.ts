/**
 * `aegisbpf run`: the command line of the daemon (src/daemon/daemon.ts
 * does the work: probes, gate, engine, posture, HTTP, control socket).
 *
 * @module
 */
import { type Command, Option } from "@commander-js/extra-typings";
import { type DaemonOptions, runDaemon } from "../daemon/daemon.ts";
import { GATE_MODES, type GateMode } from "../daemon/gate.ts";
import {
  type EnforceSignal,
  type KillEscalation,
  TAMPER_DEGRADE_THRESHOLD,
} from "../daemon/options.ts";
import type { FileHookChoice } from "../bpf/engine.ts";
import { UsageError } from "../errors.ts";
import { parseLogFileGroup, parseLogFileMode } from "../events/file_perms.ts";
import { EVENT_FORMATS, type EventFormat } from "../events/format.ts";
import { MAX_DEDUP_WINDOW_SECONDS, MAX_SAMPLE_RATE } from "../events/volume.ts";
import { parseDuration } from "../util/duration.ts";
import { SECCOMP_MODES, type SeccompMode } from "../posture/report.ts";

export { pinRoot } from "../daemon/daemon.ts";

const FILE_HOOKS = ["file", "inode", "both"] as const;

function parseRingBytes(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 4096 || (n & (n - 1)) !== 0) {
    throw new UsageError(`--ringbuf-bytes "${v}": must be a power of two >= 4096`);
  }
  return n;
}

function parseRate(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    throw new UsageError(`--deny-rate-threshold "${v}": must be a positive number`);
  }
  return n;
}

/** A whole number of attempts, 0 (never) to 1000000. */
export function parseTamperThreshold(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n > 1_000_000) {
    throw new UsageError(
      `--tamper-degrade-threshold "${v}": must be a whole number from 0 (never) to 1000000`,
    );
  }
  return n;
}

/** Whole seconds, 0 (off) or 1..86400. */
export function parseProofInterval(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n > 86400) {
    throw new UsageError(`--proof-interval "${v}": must be whole seconds from 0 (off) to 86400`);
  }
  return n;
}

/** `--event-sample-rate`: a whole number 1..MAX_SAMPLE_RATE (1 = every event). */
export function parseSampleRate(v: string): number {
  const n = Number(v);
  if (!/^\d{1,7}$/.test(v.trim()) || n < 1 || n > MAX_SAMPLE_RATE) {
    throw new UsageError(
      `--event-sample-rate "${v}": write a whole number from 1 (every event, the default) ` +
        `to ${MAX_SAMPLE_RATE} (1 in N block events of each rule)`,
    );
  }
  return n;
}

/** `--event-dedup-window`: "off", or a duration of 1 s to an hour (src/util/duration.ts). */
export function parseDedupWindow(v: string): number | "off" {
  if (v.trim() === "off") return "off";
  return parseDuration(v, MAX_DEDUP_WINDOW_SECONDS, "--event-dedup-window");
}

const ENFORCE_SIGNALS = ["none", "term", "int", "kill"] as const;

/** The C++ agent's defaults: its 5th deny within 30 s kills the process. */
export const KILL_ESCALATION_THRESHOLD = 5;
export const KILL_ESCALATION_WINDOW_SECONDS = 30;
const MAX_ESCALATION_WINDOW_SECONDS = 3600;

/** Denies that make a SIGKILL: 2..1000 (1 would be --enforce-signal kill). */
export function parseEscalationThreshold(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 2 || n > 1000) {
    throw new UsageError(
      `--kill-escalation-threshold "${v}": must be a whole number from 2 to 1000 ` +
        `(a SIGKILL at the first deny is --enforce-signal kill)`,
    );
  }
  return n;
}

/**
 * `--enforce-signal` and the kill escalation as the daemon takes them:
 * escalation only when asked for, and only above a softer signal.
 */
export function enforceSignalOptions(o: {
  enforceSignal: string;
  killEscalation?: true;
  killEscalationThreshold?: number;
  killEscalationWindow?: string;
}): { enforceSignal?: EnforceSignal; killEscalation?: KillEscalation } {
  const sig = o.enforceSignal === "none" ? undefined : o.enforceSignal as EnforceSignal;
  const tuned = o.killEscalationThreshold !== undefined || o.killEscalationWindow !== undefined;
  if (!o.killEscalation) {
    if (tuned) {
      throw new UsageError(
        "--kill-escalation-threshold and --kill-escalation-window need --kill-escalation",
      );
    }
    return { enforceSignal: sig };
  }
  if (sig !== "term" && sig !== "int") {
    throw new UsageError(
      `--kill-escalation needs --enforce-signal term or int (got ${o.enforceSignal}): ` +
        (sig === "kill"
          ? "every deny sends SIGKILL already"
          : "it escalates a softer signal to SIGKILL"),
    );
  }
  const windowSeconds = o.killEscalationWindow === undefined
    ? KILL_ESCALATION_WINDOW_SECONDS
    : parseDuration(
      o.killEscalationWindow,
      MAX_ESCALATION_WINDOW_SECONDS,
      "--kill-escalation-window",
    );
  return {
    enforceSignal: sig,
    killEscalation: {
      threshold: o.killEscalationThreshold ?? KILL_ESCALATION_THRESHOLD,
      windowMs: windowSeconds * 1000,
    },
  };
}

/** What the run command starts: the daemon (tests wrap it to inject faults). */
export type DaemonRunner = (opts: DaemonOptions) => Promise<void>;

export function addRunCommand(program: Command, start: DaemonRunner = runDaemon): void {
  program.command("run")
    .description("run the agent daemon (enforce by default; see --audit)")
    .addOption(new Option("--enforce", "enforce rules in the kernel (default)").conflicts("audit"))
    .addOption(new Option("--audit", "observe and report only; deny nothing"))
    .addOption(
      new Option("--enforce-gate-mode <mode>", "what to do when enforcement is impossible")
        .choices(GATE_MODES).env("AEGIS_ENFORCE_GATE_MODE").default("fail-closed" as GateMode),
    )
    .addOption(
      new Option("--lsm-hook <hook>", "file hook: file_open, inode_permission, or both")
        .choices(FILE_HOOKS).default("file" as FileHookChoice),
    )
    .addOption(
      new Option(
        "--enforce-fallback <how>",
        "without BPF LSM: kill processes that break a rule (ENFORCE_SIGNAL; opt-in)",
      ).choices(["signal"] as const),
    )
    .addOption(
      new Option(
        "--enforce-signal <signal>",
        "also signal a process that a rule denies (EPERM as ever): term, int or kill (opt-in)",
      ).choices(ENFORCE_SIGNALS).env("AEGIS_ENFORCE_SIGNAL").default("none" as const),
    )
    .option(
      "--kill-escalation",
      "with --enforce-signal term|int: SIGKILL a process at its Nth deny within the window",
    )
    .option(
      "--kill-escalation-threshold <n>",
      `denies of one process that make a SIGKILL (default ${KILL_ESCALATION_THRESHOLD})`,
      parseEscalationThreshold,
    )
    .option(
      "--kill-escalation-window <duration>",
      `window of those denies, e.g. 30s or 2m (default ${KILL_ESCALATION_WINDOW_SECONDS}s)`,
    )
    .addOption(
      new Option(
        "--self-protect",
        "kernel guards: only the agent may change its pins, maps, state, config and binary, " +
          "or signal/ptrace it (the default when enforcing with BPF LSM)",
      ),
    )
    .addOption(
      new Option(
        "--no-self-protect",
        "do not arm the guards (and disarm those an earlier start left armed)",
      ),
    )
    .addOption(
      new Option(
        "--seccomp <mode>",
        "the daemon's system-call allow list once it has started: enforce (others fail with " +
          "ENOSYS, logged by the kernel's audit), log (others allowed and logged), off",
      ).choices(SECCOMP_MODES).default("enforce" as const),
    )
    .addOption(
      new Option(
        "--drop-caps",
        "once started, keep only the capabilities the daemon needs, on every thread (the default)",
      ),
    )
    .addOption(
      new Option("--no-drop-caps", "keep every capability the daemon was started with"),
    )
    .option(
      "--tamper-degrade-threshold <n>",
      "with --self-protect: DEGRADED (TAMPER_ATTEMPTS) while this many tamper attempts were " +
        `refused within 60 s; 0 = never (default ${TAMPER_DEGRADE_THRESHOLD})`,
      parseTamperThreshold,
    )
    .option("--trace-opens", "also report every openat() as an open event (busy)")
    .addOption(
      new Option(
        "--exec-argv <on|off>",
        "an exec_argv event (the first 1024 bytes of the arguments) after each exec event",
      ).choices(["on", "off"] as const).env("AEGIS_EXEC_ARGV").default("on" as const),
    )
    .option("--ringbuf-bytes <bytes>", "event ring buffer size", parseRingBytes, 4 << 20)
    .option(
      "--deny-rate-threshold <per-second>",
      "DEGRADED (DENY_RATE_THRESHOLD_EXCEEDED) while denies average more than this per second " +
        "over 10 s (off by default)",
      parseRate,
    )
    .option(
      "--proof-interval <seconds>",
      "prove every S seconds that the kernel denies (a canary rule, a probe process); " +
        "0 = only at start (warned; /health?require_enforce=1 then fails)",
      parseProofInterval,
      30,
    )
    .option(
      "--strict-degrade",
      "exit non-zero when an enforce request ends in AUDIT_FALLBACK or DEGRADED",
    )
    .addOption(
      new Option("--http-listen <addr:port|off>", "read-only HTTP API (health, metrics, events)")
        .env("AEGIS_HTTP_LISTEN").default("127.0.0.1:80"),
    )
    .option("--http-allow-remote", "allow --http-listen on a non-loopback address")
    .addOption(
      new Option(
        "--probe-listen <addr:port|off>",
        "pod probes: GET /readyz (200 only when enforcing) and /livez, nothing else",
      ).env("AEGIS_PROBE_LISTEN").default("off"),
    )
    .addOption(
      new Option("--metrics-listen <addr:port|off>", "GET /metrics only, for Prometheus")
        .env("AEGIS_METRICS_LISTEN").default("off"),
    )
    .addOption(
      new Option(
        "--policy <file>",
        "apply this policy file or signed bundle at start (and on SIGHUP) unless it is the " +
          "applied one already",
      ).env("AEGIS_POLICY"),
    )
    .addOption(
      new Option(
        "--require-signature",
        "accept only signed bundles: for --policy and for the stored policy restored at start",
      ).env("AEGIS_REQUIRE_SIGNATURE"),
    )
    .addOption(
      new Option("--log <stdout|file:PATH>", "where events go (JSON lines)")
        .env("AEGIS_EVENT_LOG").default("stdout"),
    )
    .addOption(
      new Option(
        "--event-format <format>",
        "event lines: json (aegisbpf's own fields) or ocsf (OCSF 1.3 classes); " +
          "/events stays json",
      ).choices(EVENT_FORMATS).env("AEGIS_EVENT_FORMAT").default("json" as EventFormat),
    )
    .addOption(
      new Option(
        "--event-sample-rate <N>",
        "write 1 in N deny/audit events of each rule (the first included); counters count all",
      ).env("AEGIS_EVENT_SAMPLE_RATE").argParser(parseSampleRate).default(1),
    )
    .addOption(
      new Option(
        "--event-dedup-window <duration|off>",
        "fold repeats of a block event within this window (e.g. 1s) into a count on the next " +
          "line (off by default)",
      ).env("AEGIS_EVENT_DEDUP_WINDOW").argParser(parseDedupWindow).default("off" as const),
    )
    .addOption(
      new Option(
        "--log-file-mode <mode>",
        "mode of the --log file: 0600 (default), 0640 or 0660 (never more; others get nothing)",
      ).env("AEGIS_EVENT_LOG_FILE_MODE").argParser(parseLogFileMode),
    )
    .addOption(
      new Option(
        "--log-file-group <group|gid>",
        "group of the --log file, e.g. the log shipper's (with --log-file-mode 0640)",
      ).env("AEGIS_EVENT_LOG_FILE_GROUP").argParser((v) => parseLogFileGroup(v)),
    )
    .addHelpText(
      "after",
      `
Enforce mode refuses to start (exit 1) unless BPF LSM is active, every
hook the policy needs exists and every program loads and attaches; the
refusal lists every blocker with its remedy, and nothing is left attached.
With --enforce-gate-mode=audit-fallback it continues in AUDIT_FALLBACK
instead; "aegisbpf health --require-enforce" then exits 1.

runtime_state is ENFORCE, ENFORCE_SIGNAL, AUDIT_FALLBACK or DEGRADED. Each
change is a state_change event, a log line and a rewritten
capabilities.json (/var/lib/aegisbpf; AEGIS_CAPABILITIES_REPORT_PATH).
Enforcement is proven at start and every --proof-interval seconds: a
probe outside the agent's cgroup opens a sentinel under a canary rule and
must get EPERM; a failed or stale proof is DEGRADED
(ENFORCEMENT_PROOF_FAILED) and fails /health?require_enforce=1.

At start the stored policy (the last one applied, with the live rules
whose TTL still runs) is put back into the kernel before any claim of
enforcement; --policy then applies FILE when it differs (the way a unit
file or a pod spec gives a fresh node its policy). A policy that cannot
be restored or applied refuses the start in fail-closed mode
(POLICY_RESTORE_FAILED, RUN_POLICY_FAILED) and is AUDIT_FALLBACK with
that blocker in audit-fallback mode. SIGHUP reopens the event log file
(giving it --log-file-mode and --log-file-group again) and applies
--policy again if it changed; a bad file is logged and the current policy
keeps enforcing.

Programs and maps are pinned under /sys/fs/bpf/aegisbpf: they keep
enforcing after the agent stops or is killed, and a restarted agent takes
them over without a gap. "aegisbpf uninstall" removes them.

--enforce-signal term|int|kill also sends that signal to a process a
file, exec or network rule denies (the call still fails with EPERM); never
in audit, emergency disable or break-glass, never for the agent, the
survival allowlist or the enforcement proof's probes, never for the kernel
switches (deny_ptrace, deny_module_load, deny_bpf). --kill-escalation
sends SIGKILL instead at a process's Nth deny within the window (default:
the 5th within 30 s). Block events say TERM, INT or KILL when a signal was
sent, BLOCK when none was (or the kernel refused it).

Programs and maps are pinned under /sys/fs/bpf/aegisbpf: they keep
enforcing after the agent stops or is killed, and a restarted agent takes
them over without a gap. "aegisbpf uninstall" removes them.

Self-protection (on by default; --no-self-protect turns it off) arms
kernel guards once the agent started enforcing with BPF LSM: from
outside the agent's cgroup, and unless the process runs the agent's own
executable (aegisbpf uninstall, emergency, local-mode commands), the pins
cannot be removed, renamed or unmounted, the maps not opened for writing,
the links not opened, the state and config directories not written, and
the agent neither signalled (but by PID 1: systemctl stop) nor traced.
Each refusal is a tamper_block event; --tamper-degrade-threshold refusals
within 60 s (default 3) make the posture DEGRADED (TAMPER_ATTEMPTS) until a
minute passes without one. Never armed in audit, emergency
disable or break-glass; a clean stop disarms it, a SIGKILL leaves it
armed with the pins (docs/security.md).

Once started, the daemon (every thread, and the processes it starts) may
make only the system calls on its seccomp allow list (--seccomp enforce,
the default); any other fails with ENOSYS and the kernel's audit logs it
(type=1326 in the kernel log). --seccomp log only logs, off installs no
filter (docs/security.md, "Seccomp").

It also keeps only the capabilities its running work needs (CAP_BPF,
CAP_SYS_ADMIN, CAP_DAC_OVERRIDE and more: the list and the reasons are in
docs/security.md, "Capabilities"), dropped on every thread and from the
bounding set; --no-drop-caps keeps them all.

HTTP (read-only, loopback by default): /health, /health?require_enforce=1,
/capabilities, /state, /metrics, /events. Mutating control (emergency,
policy apply, rule edits) only on the root-only socket
/run/aegisbpf/control.sock.`,
    )
    .action(async (opts) => {
      await start(
        {
          audit: opts.audit,
          enforceFallback: opts.enforceFallback,
          enforceGateMode: opts.enforceGateMode as GateMode,
          ...enforceSignalOptions(opts),
          // on unless --no-self-protect (commander: false); armed only when
          // enforcing with BPF LSM (daemon/engine_start.ts selfProtectLoads)
          ...(opts.selfProtect !== false ? { selfProtect: true as const } : {}),
          seccomp: opts.seccomp as SeccompMode,
          ...(opts.dropCaps === false ? { dropCaps: false } : {}),
          ...(opts.tamperDegradeThreshold !== undefined
            ? { tamperDegradeThreshold: opts.tamperDegradeThreshold }
            : {}),
          strictDegrade: opts.strictDegrade,
          lsmHook: opts.lsmHook as FileHookChoice,
          traceOpens: opts.traceOpens,
          execArgv: opts.execArgv !== "off",
          ringbufBytes: opts.ringbufBytes,
          httpListen: opts.httpListen,
          httpAllowRemote: opts.httpAllowRemote,
          probeListen: opts.probeListen,
          metricsListen: opts.metricsListen,
          log: opts.log,
          eventFormat: opts.eventFormat as EventFormat,
          logFileMode: opts.logFileMode,
          logFileGid: opts.logFileGroup,
          eventSampleRate: opts.eventSampleRate,
          eventDedupWindowSeconds: opts.eventDedupWindow === "off"
            ? undefined
            : opts.eventDedupWindow,
          denyRateThreshold: opts.denyRateThreshold,
          proofIntervalSeconds: opts.proofInterval,
          policy: opts.policy,
          requireSignature: opts.requireSignature,
        } satisfies DaemonOptions,
      );
    });
}
