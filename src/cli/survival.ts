/**
 * `aegisbpf survival list|verify`: the survival allowlist (the executables
 * of PID 1, init, ssh, shells, container runtimes and package managers that
 * no rule may deny, filled at start: bpf/survival.ts). `list` prints its
 * entries; `verify` compares them with the survivors running now and fails
 * when one of them runs from an executable the list does not hold.
 * docs/operations.md, "The survival allowlist".
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { openEmbeddedShim } from "../assets/mod.ts";
import { pinRoot } from "../bpf/engine.ts";
import { PinnedMaps } from "../bpf/pins.ts";
import {
  checkSurvival,
  listSurvival,
  runningSurvivors,
  type SurvivalCheck,
  type SurvivalListed,
  type SurvivalMap,
} from "../bpf/survival.ts";
import { AegisError } from "../errors.ts";
import { out, outJson } from "../log.ts";
import { daemonOrLocal } from "./daemon_or_local.ts";
import type { SurvivalListJson, SurvivalVerifyJson } from "./json_output.ts";

/** `f` over the pinned allowlist map (no daemon). */
async function onPins<T>(f: (map: SurvivalMap) => T): Promise<T> {
  using shim = await openEmbeddedShim();
  using pins = new PinnedMaps(shim, pinRoot());
  return f(pins.map("aegis_survival_inode"));
}

function entryText(e: SurvivalListed): string {
  return `${e.device.padEnd(8)} ${e.ino.padStart(12)}  ${e.exe ?? "(no running survivor)"}`;
}

async function list(json?: true): Promise<void> {
  const { value: r, via } = await daemonOrLocal<
    { capacity: number; entries: SurvivalListed[] }
  >("GET", "/survival", undefined, () =>
    onPins((map) => ({
      capacity: map.maxEntries,
      entries: listSurvival(map, runningSurvivors()),
    })));
  if (json) {
    const o: SurvivalListJson = { ok: true, via, capacity: r.capacity, entries: r.entries };
    return outJson(o);
  }
  out(`survival allowlist: ${r.entries.length} of ${r.capacity} entries`);
  if (r.entries.length === 0) return;
  out(`${"DEVICE".padEnd(8)} ${"INODE".padStart(12)}  EXECUTABLE`);
  for (const e of r.entries) out(entryText(e));
}

async function verify(json?: true): Promise<void> {
  const { value: r, via } = await daemonOrLocal<SurvivalCheck>(
    "GET",
    "/survival/verify",
    undefined,
    () => onPins((map) => checkSurvival(map, runningSurvivors())),
  );
  if (r.missing.length > 0 || r.entries === 0) {
    for (const m of json ? [] : r.missing) {
      out(`missing: pid ${m.pid} ${m.exe} (inode ${m.dev}:${m.ino}) is not on the allowlist`);
    }
    const why = r.entries === 0
      ? "the survival allowlist is empty"
      : `${r.missing.length} running survivor(s) are not on the survival allowlist`;
    const e = new AegisError(
      "SURVIVAL_INCOMPLETE",
      `${why}: a rule could deny them (their binary changed since the agent started, e.g. a ` +
        `package upgrade). Restart the agent to fill the list again`,
    );
    throw Object.assign(e, { details: { via, ...r } });
  }
  if (json) {
    const o: SurvivalVerifyJson = { ok: true, via, ...r };
    return outJson(o);
  }
  out(
    `survival allowlist ok: ${r.survivors.length} running survivor(s), all on the list ` +
      `(${r.entries} entries)`,
  );
  for (const e of r.stale) out(`  not running now: ${entryText(e)}`);
}

export function addSurvivalCommand(program: Command): void {
  const survival = program.command("survival")
    .description("the survival allowlist: executables no rule may deny")
    .addHelpText(
      "after",
      `
At start the agent puts the executables of PID 1 and of the init, ssh, shell,
container-runtime and package-manager processes then running on this list, so
that no policy can lock the node out. 'verify' fails (exit 1,
SURVIVAL_INCOMPLETE) when such a process runs now from an executable that is
not on the list, e.g. sshd restarted after a package upgrade.`,
    );
  survival.command("list").description("the allowlist's entries (device, inode, executable)")
    .option("--json", "machine-readable output").action((o) => list(o.json));
  survival.command("verify")
    .description("check that every survivor running now is on the allowlist")
    .option("--json", "machine-readable output").action((o) => verify(o.json));
}
