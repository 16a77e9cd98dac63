/**
 * `aegisbpf uninstall`: remove the pinned links (which detaches the
 * programs: enforcement ends) and maps. Says what it removed.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { uninstallPins } from "../bpf/engine.ts";
import { out, outJson } from "../log.ts";
import { pinRoot } from "./run.ts";

export function addUninstallCommand(program: Command): void {
  program.command("uninstall")
    .description("remove aegisbpf's pinned programs and maps (ends kernel enforcement)")
    .option("--json", "machine-readable output")
    .action((opts) => {
      const root = pinRoot();
      const removed = uninstallPins(root);
      if (opts.json) return outJson({ pin_root: root, removed });
      if (removed.length === 0) return out(`nothing to remove under ${root}`);
      for (const r of removed) out(`removed ${r}`);
      out(`${removed.length} pins removed; aegisbpf no longer enforces anything on this host`);
    });
}
