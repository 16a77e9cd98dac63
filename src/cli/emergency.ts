/**
 * `aegisbpf emergency-disable|emergency-enable|emergency-status` and
 * `aegisbpf break-glass check|token`.
 *
 * While the daemon runs, the emergency commands go through its control
 * socket (so its control_change event and metrics follow). Without a
 * daemon they act directly on the pinned config map with the same
 * EmergencyControl (same lock, log and state file). Without pins there is
 * no agent loaded and nothing to switch.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { openEmbeddedShim } from "../assets/mod.ts";
import { AEGIS_CFG_EMERGENCY_DISABLE } from "../bpf/abi_gen.ts";
import { PinnedMaps, pinsPresent } from "../bpf/pins.ts";
import {
  breakGlassPaths,
  detectBreakGlass,
  mintToken,
  TOKEN_MAX_SECONDS,
} from "../control/break_glass.ts";
import { daemonCall, daemonHealth, daemonOrLocal } from "./daemon_or_local.ts";
import {
  EmergencyControl,
  type EmergencyFlag,
  type EmergencyStatus,
  emergencyStatusJson,
  toggleJson,
  type ToggleResult,
} from "../control/emergency.ts";
import { aegisPaths } from "../contracts.ts";
import { AegisError, UsageError } from "../errors.ts";
import { out, outJson, writeStderr } from "../log.ts";
import { keysDir, loadTrustedKeys, readSecretKeyFile } from "../policy/keys.ts";
import { pinRoot } from "../bpf/engine.ts";

type Via = "daemon" | "direct";

function noAgent(): AegisError {
  return new AegisError(
    "NOT_RUNNING",
    `no agent is loaded: no daemon answers on ${aegisPaths().controlSocket} and there are no ` +
      `pins under ${pinRoot()}, so nothing enforces and there is nothing to switch. ` +
      `Start it with "aegisbpf run".`,
  );
}

/** Run `f` with an EmergencyControl on the pinned config map. */
async function withDirect<T>(f: (ctl: EmergencyControl) => Promise<T> | T): Promise<T> {
  if (pinsPresent(pinRoot()) !== true) throw noAgent();
  using shim = await openEmbeddedShim();
  using pins = new PinnedMaps(shim, pinRoot());
  const cfg = pins.map("aegis_config");
  const flag: EmergencyFlag = {
    get: () => cfg.sumU64(AEGIS_CFG_EMERGENCY_DISABLE) !== 0n,
    set: (on) => cfg.setU64(AEGIS_CFG_EMERGENCY_DISABLE, on ? 1n : 0n),
  };
  const ctl = new EmergencyControl({ stateDir: aegisPaths().stateDir, flag });
  return await f(ctl);
}

async function toggle(disable: boolean, reason: string, json: boolean): Promise<void> {
  const path = disable ? "/emergency/disable" : "/emergency/enable";
  const { value: result, via: how } = await daemonOrLocal<ToggleResult>(
    "POST",
    path,
    { reason },
    () =>
      withDirect((ctl) => ctl.toggle(disable, reason, { uid: Deno.uid() ?? -1, pid: Deno.pid })),
  );
  const via: Via = how === "daemon" ? "daemon" : "direct";
  if (json) {
    outJson(toggleJson(result, via));
    return;
  }
  if (!result.changed) {
    out(
      `emergency disable was already ${result.active ? "active" : "off"}; nothing changed ` +
        `(nothing logged).`,
    );
    return;
  }
  out(
    result.active
      ? `emergency disable is ACTIVE: enforcement is OFF. Every hook allows and reports ` +
        `would-be denials as AUDIT events.`
      : `emergency disable is off: ${await enforcementAfterEnable(via)}`,
  );
  out(`reason: ${result.reason} (sha256 ${result.reason_sha256})`);
  if (result.storm_active) {
    writeStderr(
      `warning: toggle storm: ${result.transitions_60s} transitions within 60 s; check who is ` +
        `toggling and why\n`,
    );
  }
}

/**
 * What "emergency disable is off" means on this node: the kernel flag is
 * clear, but only an agent in ENFORCE with its proofs passing denies
 * anything (an auditing or degraded node does not). Asked of the daemon's
 * health; without a daemon the pinned programs are all there is.
 */
async function enforcementAfterEnable(via: Via): Promise<string> {
  if (via === "direct") {
    return "the pinned rules apply again (no agent runs: check with 'aegisbpf health " +
      "--require-enforce' whether this node enforces).";
  }
  try {
    const h = await daemonHealth(true);
    if (h === null) {
      return "the rules apply again; the agent stopped answering, so whether this node " +
        "enforces is unknown (check with 'aegisbpf health --require-enforce').";
    }
    if (h.healthy) return "enforcement is ON again.";
    return `enforcement is NOT active on this node: ${h.body.runtime_state ?? "unknown state"}` +
      (h.body.reasons.length ? ` (${h.body.reasons.join("; ")})` : "") + ".";
  } catch (e) {
    return `the rules apply again; whether this node enforces is unknown (health: ${
      e instanceof Error ? e.message : e
    }).`;
  }
}

function printStatus(s: EmergencyStatus & { agent_loaded: boolean; via: string }): void {
  if (!s.agent_loaded) out("no agent is loaded (no daemon, no pins): nothing enforces.");
  out(
    `emergency disable: ${
      s.active ? "ACTIVE (enforcement OFF, hooks report AUDIT)" : "off (rules enforced)"
    }`,
  );
  if (s.since_unix !== null) {
    out(`last change: ${new Date(s.since_unix * 1000).toISOString()} (unix ${s.since_unix})`);
  }
  if (s.changed_by) out(`changed by: uid ${s.changed_by.uid} pid ${s.changed_by.pid}`);
  if (s.reason !== null) out(`reason: ${s.reason}`);
  out(
    `transitions: ${s.transitions_total} total, ${s.transitions_60s} in the last 60 s` +
      (s.storm_active ? " — TOGGLE STORM" : ""),
  );
  if (s.state_error) writeStderr(`warning: ${s.state_error}\n`);
  else if (s.agent_loaded && !s.state_consistent) {
    writeStderr(
      `warning: the state file does not match the kernel flag (pins recreated, or changed ` +
        `outside aegisbpf); the kernel flag is what counts\n`,
    );
  }
}

async function status(json: boolean): Promise<void> {
  let s: EmergencyStatus & { agent_loaded: boolean; via: string };
  const answer = await daemonCall<EmergencyStatus>("GET", "/emergency/status");
  if (answer !== null) {
    s = { ...answer, agent_loaded: true, via: "daemon" };
  } else if (pinsPresent(pinRoot()) === true) {
    s = { ...(await withDirect((ctl) => ctl.status())), agent_loaded: true, via: "direct" };
  } else {
    // nothing loaded: report the last recorded change; nothing is active
    const ctl = new EmergencyControl({
      stateDir: aegisPaths().stateDir,
      flag: { get: () => false, set: () => {} },
    });
    s = { ...ctl.status(), agent_loaded: false, via: "none" };
  }
  if (json) outJson(emergencyStatusJson(s));
  else printStatus(s);
}

const REASON_HELP = `
The reason is required and recorded: control characters are replaced, it is
cut to 512 bytes, and the SHA-256 of the text as given is stored beside it.

While the daemon runs this goes through its control socket
(/run/aegisbpf/control.sock); otherwise it changes the pinned config map
directly. Either way it takes the emergency lock (so two operators cannot
race), appends a line to /var/lib/aegisbpf/control_log.jsonl and rewrites
control_state.json. If the log cannot be written, nothing changes and the
command fails. A toggle to the state already in force exits 0 and logs
nothing. Exit 0 on success, 1 on failure.`;

export function addEmergencyCommands(program: Command): void {
  program.command("emergency-disable")
    .description("kill switch: stop denying at once (hooks keep reporting, as AUDIT)")
    .requiredOption("--reason <text>", "why (recorded in the audit trail)")
    .option("--json", "print the result as JSON")
    .addHelpText("after", REASON_HELP)
    .action(async (o) => await toggle(true, o.reason, o.json === true));

  program.command("emergency-enable")
    .description("end emergency disable: rules are enforced again at once")
    .requiredOption("--reason <text>", "why (recorded in the audit trail)")
    .option("--json", "print the result as JSON")
    .addHelpText("after", REASON_HELP)
    .action(async (o) => await toggle(false, o.reason, o.json === true));

  program.command("emergency-status")
    .description("is emergency disable active, since when, who set it and why")
    .option("--json", "print the status as JSON")
    .addHelpText(
      "after",
      `
"active" is read from the kernel flag; who/when/why come from
control_state.json. transitions_60s above 10 is a toggle storm.`,
    )
    .action(async (o) => await status(o.json === true));

  const bg = program.command("break-glass")
    .description("force audit mode at the next agent start (kernel cmdline, marker, signed token)");
  bg.command("check")
    .description("would the agent start in break-glass (forced audit) now, and why")
    .option("--json", "print the result as JSON")
    .action(async (o) => {
      const paths = aegisPaths();
      const keys = await loadTrustedKeys(keysDir());
      const r = await detectBreakGlass({
        ...breakGlassPaths(paths),
        trustedKeys: keys.keys,
        now: Date.now(),
      });
      if (o.json) {
        outJson(r);
        return;
      }
      out(
        r.active ? `break-glass ACTIVE (${r.source}): ${r.detail}` : "break-glass: not requested",
      );
      for (const i of r.ignored) writeStderr(`ignored: ${i}\n`);
    });
  bg.command("token")
    .description("mint a signed break-glass token for one node (at most 24 hours)")
    .requiredOption("--key <file>", "secret key (.key from 'aegisbpf keys keygen')")
    .requiredOption("--node <name>", "the node's host name, as it reports it")
    .requiredOption("--reason <text>", "why")
    .requiredOption("--out <file>", "where to write the token (never overwritten)")
    .option("--hours <n>", "validity from now, 1 to 24", "4")
    .option("--json", "print one JSON object {ok, node, out, not_before, expires_at}")
    .addHelpText(
      "after",
      `
Install the token on the node as /etc/aegisbpf/break_glass.token (root-owned,
mode 0600). The node must trust the signing key (aegisbpf keys add KEY.pub).
The agent then starts in AUDIT_FALLBACK (BREAK_GLASS_ACTIVE) until the token
expires. Remove the file to end it earlier.`,
    )
    .action(async (o) => {
      const hours = Number(o.hours);
      if (!Number.isFinite(hours) || hours <= 0 || hours * 3600 > TOKEN_MAX_SECONDS) {
        throw new UsageError(`--hours "${o.hours}": must be more than 0 and at most 24`);
      }
      const secret = await readSecretKeyFile(o.key);
      const now = Math.floor(Date.now() / 1000);
      const expiresAt = now + Math.floor(hours * 3600);
      const text = await mintToken(secret, {
        node: o.node,
        not_before: now,
        expires_at: expiresAt,
        reason: o.reason,
      });
      try {
        const f = Deno.openSync(o.out, { write: true, createNew: true, mode: 0o600 });
        try {
          f.writeSync(new TextEncoder().encode(text));
          f.syncSync();
        } finally {
          f.close();
        }
      } catch (e) {
        throw new AegisError(
          e instanceof Deno.errors.AlreadyExists ? "FILE_EXISTS" : "WRITE_FAILED",
          `Cannot create "${o.out}": ${(e as Error).message}`,
        );
      }
      if (o.json) {
        return outJson({
          ok: true,
          node: o.node,
          out: o.out,
          not_before: now,
          expires_at: expiresAt,
        });
      }
      out(`break-glass token for node ${o.node} written to ${o.out} (valid ${hours} h)`);
    });
}
