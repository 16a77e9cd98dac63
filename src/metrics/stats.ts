/**
 * `aegisbpf stats` and `network stats` read the same numbers as
 * `aegisbpf metrics --detailed` (the daemon's GET /metrics?detailed=1, or
 * rendered from the pinned maps without a daemon) and sum them up per hook.
 * So the two never disagree, and the proof's own denies are taken out the
 * same way (docs/telemetry.md). Pure: the exposition text in, numbers out.
 *
 * @module
 */
import { HOOK_NAMES } from "../events/json.ts";
import { BLOCK_ACTIONS, NET_BLOCK_TYPES } from "./render.ts";

/** One sample of the exposition: name, labels, value. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** The samples of an exposition our renderer wrote (comments and blank lines skipped). */
export function readSamples(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a metrics sample line: ${JSON.stringify(line.slice(0, 200))}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(LABEL)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** A hook's counters. */
export interface HookCounts {
  hook: string;
  invocations: number;
  blocks: number;
  audits: number;
}

/** What both stats commands take from the exposition. */
export interface KernelStats {
  blocks: number;
  audits: number;
  ringbuf_drops: number;
  events: number;
  hooks: HookCounts[];
  ringbuf_drops_per_cpu: number[];
  survival_allows: number;
  signals_sent: number;
  /** aegisbpf_net_blocks_total by action and type; null when absent (no daemon) */
  net_by_type: Record<"block" | "audit", Record<string, number>> | null;
}

/** The hooks that decide network operations (docs/engine.md). */
export const NET_HOOKS: readonly string[] = [
  "socket_connect",
  "socket_bind",
  "socket_sendmsg",
  "tp_connect",
];

/** Sum the exposition of `metrics --detailed` into the stats (missing samples count 0). */
export function kernelStats(text: string): KernelStats {
  const samples = readSamples(text);
  const one = (name: string, labels: Record<string, string> = {}) =>
    samples.find((s) =>
      s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)
    )?.value ?? 0;
  const hooks = Object.values(HOOK_NAMES).map((hook) => ({
    hook,
    invocations: one("aegisbpf_hook_invocations_total", { hook }),
    blocks: one("aegisbpf_hook_blocks_total", { hook, action: "block" }),
    audits: one("aegisbpf_hook_blocks_total", { hook, action: "audit" }),
  }));
  const perCpu = samples.filter((s) => s.name === "aegisbpf_ringbuf_drops_per_cpu_total")
    .sort((a, b) => Number(a.labels.cpu) - Number(b.labels.cpu)).map((s) => s.value);
  const net = samples.filter((s) => s.name === "aegisbpf_net_blocks_total");
  let netByType: KernelStats["net_by_type"] = null;
  if (net.length > 0) {
    netByType = { block: {}, audit: {} };
    for (const a of BLOCK_ACTIONS) {
      for (const t of NET_BLOCK_TYPES) {
        netByType[a][t] = one("aegisbpf_net_blocks_total", {
          type: t,
          action: a,
        });
      }
    }
  }
  return {
    blocks: one("aegisbpf_blocks_total", { action: "block" }),
    audits: one("aegisbpf_blocks_total", { action: "audit" }),
    ringbuf_drops: one("aegisbpf_ringbuf_drops_total"),
    events: one("aegisbpf_events_emitted_total"),
    hooks,
    ringbuf_drops_per_cpu: perCpu,
    survival_allows: one("aegisbpf_survival_allow_total"),
    signals_sent: one("aegisbpf_signals_sent_total"),
    net_by_type: netByType,
  };
}
