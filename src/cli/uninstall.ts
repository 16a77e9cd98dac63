/**
 * `aegisbpf uninstall`: remove the pinned links (which detaches the
 * programs: enforcement ends) and maps, and the binary and systemd unit that
 * `aegisbpf install` wrote. `--purge` also removes /etc/aegisbpf (settings,
 * keys, policy) and /var/lib/aegisbpf (state). Says what it removed.
 *
 * @module
 */
import type { Command } from "@commander-js/extra-typings";
import { uninstallPins } from "../bpf/engine.ts";
import { out, outJson } from "../log.ts";
import { uninstallFiles } from "./install.ts";
import { pinRoot } from "../bpf/engine.ts";

export function addUninstallCommand(program: Command): void {
  program.command("uninstall")
    .description("remove aegisbpf's pinned programs and maps (ends kernel enforcement)")
    .option("--purge", "also remove /etc/aegisbpf (settings, keys, policy) and /var/lib/aegisbpf")
    .option("--root <dir>", "files under DIR only (packaging, tests); pins are not touched", "/")
    .option("--dry-run", "print what would be removed and remove nothing")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
Removes the pins under /sys/fs/bpf/aegisbpf, then the binary and the unit
that "aegisbpf install" wrote (files changed since are kept and named).
Without --purge, /etc/aegisbpf and /var/lib/aegisbpf stay for a later install.
Stop the service first: systemctl disable --now aegisbpf. See docs/install.md.`,
    )
    .action(async (opts) => {
      const dryRun = opts.dryRun === true;
      const onHost = opts.root === "/";
      const root = pinRoot();
      const removed = onHost && !dryRun ? uninstallPins(root) : [];
      const files = await uninstallFiles({ root: opts.root, purge: opts.purge === true, dryRun });
      if (opts.json) return outJson({ pin_root: onHost ? root : null, removed, files });
      const verb = dryRun ? "would remove" : "removed";
      if (!onHost) out(`pins not touched (--root ${files.root})`);
      else if (dryRun) out(`would remove the pins under ${root}`);
      else if (removed.length === 0) out(`nothing to remove under ${root}`);
      else {
        for (const r of removed) out(`removed ${r}`);
        out(`${removed.length} pins removed; aegisbpf no longer enforces anything on this host`);
      }
      for (const f of files.removed) out(`${verb} ${f}`);
      for (const k of files.kept) out(`kept ${k}`);
      if (!opts.purge && files.removed.length + files.kept.length > 0) {
        out("kept /etc/aegisbpf and /var/lib/aegisbpf (remove them with --purge)");
      }
    });
}
