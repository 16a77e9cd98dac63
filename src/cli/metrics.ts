/**
 * `aegisbpf metrics [--out PATH|-] [--detailed]`: the Prometheus text of
 * `GET /metrics`. Asks the running daemon over its control socket; without
 * a daemon, renders from the pinned maps (kernel counters, map capacity,
 * emergency flag; runtime state UNKNOWN). A comment line at the top says
 * which. Never the daemon's `process_*` metrics (withoutProcessMetrics).
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { openEmbeddedShim } from "../assets/mod.ts";
import { PinnedMaps } from "../bpf/pins.ts";
import { withDaemon } from "../control/client.ts";
import { aegisPaths } from "../contracts.ts";
import { AegisError } from "../errors.ts";
import { writeStdout } from "../log.ts";
import { withoutProcessMetrics } from "../metrics/process.ts";
import { kernelOnlySources, type MetricsMap, renderMetrics } from "../metrics/render.ts";
import { writeFileAtomic } from "../policy/atomic.ts";
import { pinRoot } from "../bpf/engine.ts";
import type { MapName } from "../bpf/abi_gen.ts";

/**
 * GET /metrics from the daemon's control socket as text; null when no
 * daemon listens there.
 */
export function fetchDaemonMetrics(
  detailed: boolean,
  socket: string = aegisPaths().controlSocket,
): Promise<string | null> {
  const path = `/metrics${detailed ? "?detailed=1" : ""}`;
  return withDaemon("GET", path, undefined, async (res) => {
    const text = await res.text();
    if (res.status !== 200) {
      throw new AegisError(
        "DAEMON_BAD_REPLY",
        `the daemon at ${socket} answered GET /metrics with HTTP ${res.status}: ` +
          JSON.stringify(text.slice(0, 200)),
      );
    }
    return text;
  }, socket);
}

/** Render from the pins (no daemon): kernel facts only. */
export async function renderFromPins(detailed: boolean, root = pinRoot()): Promise<string> {
  using shim = await openEmbeddedShim();
  using pins = new PinnedMaps(shim, root);
  const map = (name: MapName): MetricsMap | null => {
    try {
      return pins.map(name);
    } catch {
      return null; // not pinned (older layout or a map this mode does not use)
    }
  };
  return await renderMetrics(kernelOnlySources(map, aegisPaths().perfSlo), { detailed });
}

export function addMetricsCommand(program: Command): void {
  program.command("metrics")
    .description("print the agent's metrics in Prometheus text format")
    .option("--out <path>", 'write to this file (atomically, mode 0644) instead of stdout ("-")')
    .option("--detailed", "add per-hook blocks/audits, per-CPU drops and map entry counts")
    .addHelpText(
      "after",
      `
When the daemon runs, this asks it (the same text as GET /metrics). When it
does not, the numbers come straight from the pinned kernel maps under
/sys/fs/bpf/aegisbpf: counters, map capacity and utilisation, the emergency
flag; the runtime state is then reported as UNKNOWN. The first line, a
comment, says which. Useful for the node-exporter textfile collector:
  aegisbpf metrics --out /var/lib/node_exporter/aegisbpf.prom`,
    )
    .action(async (opts) => {
      const detailed = opts.detailed === true;
      let text = await fetchDaemonMetrics(detailed);
      let head: string;
      if (text !== null) {
        // for node-exporter's textfile collector: its own process_* would collide
        text = withoutProcessMetrics(text);
        head = "# aegisbpf metrics from the running daemon\n";
      } else {
        text = await renderFromPins(detailed);
        head = `# aegisbpf metrics from the pinned maps under ${pinRoot()} ` +
          "(no daemon running: runtime state unknown)\n";
      }
      const out = head + text;
      if (opts.out === undefined || opts.out === "-") {
        writeStdout(out);
      } else {
        writeFileAtomic(opts.out, new TextEncoder().encode(out), 0o644);
      }
    });
}
