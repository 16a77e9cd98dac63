/**
 * `aegisbpf stats [--detailed]` and `aegisbpf network stats`: the kernel's
 * block counters by hook, the ring-buffer drops, and (with --detailed, from
 * a running daemon) blocks by rule and by cgroup. The numbers are those of
 * `metrics --detailed` (metrics/stats.ts); docs/operations.md, "Counters".
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { pinRoot } from "../bpf/engine.ts";
import { AegisError } from "../errors.ts";
import { out, outJson } from "../log.ts";
import type { BlockTallySnapshot } from "../metrics/block_tally.ts";
import { type HookCounts, kernelStats, NET_HOOKS } from "../metrics/stats.ts";
import { daemonCall, type Via } from "./daemon_or_local.ts";
import type { NetworkStatsJson, StatsJson } from "./json_output.ts";
import { fetchDaemonMetrics, renderFromPins } from "./metrics.ts";

/** The `metrics --detailed` text: from the daemon, else from the pinned maps. */
async function detailedMetrics(): Promise<{ text: string; via: Via }> {
  const text = await fetchDaemonMetrics(true);
  if (text !== null) return { text, via: "daemon" };
  return { text: await renderFromPins(true), via: "local" };
}

/** The daemon's block tally; null from a daemon that does not count (an older agent). */
async function daemonTally(): Promise<BlockTallySnapshot | null> {
  try {
    return await daemonCall<BlockTallySnapshot>("GET", "/stats/blocks");
  } catch (e) {
    // the control app answers an unknown path 404 NOT_FOUND
    if (e instanceof AegisError && (e.code === "NOT_FOUND" || e.code === "HTTP_404")) return null;
    throw e;
  }
}

function source(via: Via): string {
  return via === "daemon"
    ? "from the running daemon"
    : `from the pinned maps under ${pinRoot()} (no daemon running)`;
}

function hookTable(hooks: readonly HookCounts[], all: boolean): void {
  const shown = all ? hooks : hooks.filter((h) => h.invocations + h.blocks + h.audits > 0);
  if (shown.length === 0) return out("  no hook has run");
  out(
    `  ${"HOOK".padEnd(22)} ${"INVOCATIONS".padStart(14)} ${"BLOCKS".padStart(10)} ` +
      `${"AUDITS".padStart(10)}`,
  );
  for (const h of shown) {
    out(
      `  ${h.hook.padEnd(22)} ${String(h.invocations).padStart(14)} ` +
        `${String(h.blocks).padStart(10)} ${String(h.audits).padStart(10)}`,
    );
  }
}

function tallyText(t: BlockTallySnapshot | null, via: Via): void {
  if (t === null) {
    out(
      via === "daemon"
        ? "by rule and by cgroup: this daemon does not count them (an older agent)"
        : "by rule and by cgroup: not known without a running daemon (it counts them from " +
          "the block events it reads)",
    );
    return;
  }
  const since = new Date(t.since_unix * 1000).toISOString();
  out(`by rule (from ${t.records} block event(s) since ${since}):`);
  if (t.by_rule.length === 0) out("  none");
  for (const r of t.by_rule) {
    out(
      `  ${String(r.blocks).padStart(10)} block ${String(r.audits).padStart(8)} audit  ` +
        `rule ${r.rule_id}: ${r.rule ?? "(no such rule now)"}`,
    );
  }
  out("by cgroup:");
  if (t.by_cgroup.length === 0) out("  none");
  for (const c of t.by_cgroup) {
    out(
      `  ${String(c.blocks).padStart(10)} block ${String(c.audits).padStart(8)} audit  ` +
        `${c.cgroup_path ?? "(path unknown)"} (cgid ${c.cgid})`,
    );
  }
  const o = t.other;
  if (o.rules.blocks + o.rules.audits + o.cgroups.blocks + o.cgroups.audits > 0) {
    out(
      `  beyond the tally's bound: rules ${o.rules.blocks}/${o.rules.audits}, cgroups ` +
        `${o.cgroups.blocks}/${o.cgroups.audits} (block/audit)`,
    );
  }
}

/** `aegisbpf stats`. */
export async function stats(detailed: boolean, json?: true): Promise<void> {
  const { text, via } = await detailedMetrics();
  const k = kernelStats(text);
  const tally = detailed && via === "daemon" ? await daemonTally() : null;
  if (json) {
    const o: StatsJson = {
      ok: true,
      via,
      blocks: k.blocks,
      audits: k.audits,
      ringbuf_drops: k.ringbuf_drops,
      events: k.events,
      hooks: k.hooks,
      detailed: detailed
        ? {
          ringbuf_drops_per_cpu: k.ringbuf_drops_per_cpu,
          survival_allows: k.survival_allows,
          signals_sent: k.signals_sent,
          tally,
        }
        : null,
    };
    return outJson(o);
  }
  out(`stats ${source(via)}:`);
  out(
    `  blocks ${k.blocks}, audits ${k.audits} (would-be blocks), ring-buffer drops ` +
      `${k.ringbuf_drops}, events ${k.events}`,
  );
  hookTable(k.hooks, detailed);
  if (!detailed) return;
  out(`ring-buffer drops per CPU: ${k.ringbuf_drops_per_cpu.join(" ") || "-"}`);
  out(`survival allows ${k.survival_allows}, signals sent ${k.signals_sent}`);
  tallyText(tally, via);
}

/** `aegisbpf network stats`. */
export async function networkStats(json?: true): Promise<void> {
  const { text, via } = await detailedMetrics();
  const k = kernelStats(text);
  const hooks = k.hooks.filter((h) => NET_HOOKS.includes(h.hook));
  const blocks = hooks.reduce((n, h) => n + h.blocks, 0);
  const audits = hooks.reduce((n, h) => n + h.audits, 0);
  if (json) {
    const o: NetworkStatsJson = { ok: true, via, blocks, audits, hooks, by_type: k.net_by_type };
    return outJson(o);
  }
  out(`network stats ${source(via)}:`);
  out(`  blocks ${blocks}, audits ${audits} (would-be blocks)`);
  hookTable(hooks, true);
  if (k.net_by_type === null) {
    return out("by rule type: not known without a running daemon (it counts them from events)");
  }
  out("by rule type (block/audit):");
  for (const [t, n] of Object.entries(k.net_by_type.block)) {
    out(`  ${t.padEnd(10)} ${n}/${k.net_by_type.audit[t] ?? 0}`);
  }
}

export function addStatsCommand(program: Command): void {
  program.command("stats")
    .description("blocks by hook and ring-buffer drops; --detailed adds blocks by rule and cgroup")
    .option("--detailed", "every hook, drops per CPU, and (from the daemon) by rule and cgroup")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
The kernel counts blocks (denied or signalled) and audits (would-be blocks)
per hook; the enforcement proof's own denies are not counted. Blocks by rule
and by cgroup are counted by the running daemon from the block events it
reads, since it started (a record the ring buffer dropped is not counted: see
the drops). The same numbers as 'aegisbpf metrics --detailed'.`,
    )
    .action((o) => stats(o.detailed === true, o.json));
}
