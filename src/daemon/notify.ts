/**
 * The service manager's notification protocol (systemd `Type=notify`,
 * docs/install.md "The systemd unit"): READY=1 once the agent has restored
 * its policy and decided its posture, STATUS= lines with the posture as it
 * changes, STOPPING=1 when it shuts down, and WATCHDOG=1 from the runtime
 * checks when the unit sets `WatchdogSec=`.
 *
 * Pure apart from the `send` it is given (the shim's aegis_sd_notify in the
 * daemon, a recorder in tests). A failed send never stops the agent: it is
 * reported once through `onError`, then the notifier goes quiet.
 *
 * @module
 */

/** The environment variables systemd sets for a notify service. */
export interface NotifyEnv {
  NOTIFY_SOCKET?: string;
  WATCHDOG_USEC?: string;
  WATCHDOG_PID?: string;
}

export interface ServiceNotifier {
  /** The agent serves: READY=1 with a status line. */
  ready(status: string): void;
  status(status: string): void;
  stopping(status: string): void;
  /** Keep-alive; a no-op unless the watchdog is on for this process. */
  watchdog(): void;
  /** Period the watchdog expects a ping within (µs from systemd, in ms), or null. */
  readonly watchdogMs: number | null;
}

/** One STATUS= value: a single line, bounded (systemd shows it in `systemctl status`). */
export function statusLine(s: string): string {
  const line = s.replace(/[\r\n]+/g, " ").trim();
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

/**
 * A notifier for this process, or null when no service manager asked for
 * notifications (NOTIFY_SOCKET unset or empty).
 */
export function serviceNotifier(
  env: NotifyEnv,
  pid: number,
  send: (socket: string, message: string) => void,
  onError: (e: unknown) => void,
): ServiceNotifier | null {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return null;
  let broken = false;
  const say = (msg: string) => {
    if (broken) return;
    try {
      send(socket, msg);
    } catch (e) {
      broken = true;
      onError(e);
    }
  };
  const usec = Number(env.WATCHDOG_USEC);
  const forMe = env.WATCHDOG_PID === undefined || Number(env.WATCHDOG_PID) === pid;
  const watchdogMs = Number.isSafeInteger(usec) && usec > 0 && forMe
    ? Math.max(1, Math.floor(usec / 1000))
    : null;
  return {
    watchdogMs,
    ready: (s) => say(`READY=1\nSTATUS=${statusLine(s)}\nMAINPID=${pid}`),
    status: (s) => say(`STATUS=${statusLine(s)}`),
    stopping: (s) => say(`STOPPING=1\nSTATUS=${statusLine(s)}`),
    watchdog: () => {
      if (watchdogMs !== null) say("WATCHDOG=1");
    },
  };
}
