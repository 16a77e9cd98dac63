/**
 * The command-line interface: one file per command, wired here.
 *
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { AegisError } from "../errors.ts";
import { setupLogging, writeStderr, writeStdout } from "../log.ts";
import { addCapabilitiesCommand } from "./capabilities.ts";
import { addEmergencyCommands } from "./emergency.ts";
import { addHealthCommands } from "./health.ts";
import { addInstallCommand } from "./install.ts";
import { addKeysCommand } from "./keys.ts";
import { addMetricsCommand } from "./metrics.ts";
import { addPolicyCommand } from "./policy.ts";
import { addProbeCommand } from "./probe.ts";
import { addRuleCommands } from "./rules.ts";
import { addRunCommand } from "./run.ts";
import { addUninstallCommand } from "./uninstall.ts";
import { addVersionCommand } from "./version.ts";

export function buildProgram(): Command {
  const program = new Command()
    .name("aegisbpf")
    .description(
      "Kernel-enforced file, exec and network rules (BPF LSM), and an honest answer to " +
        "whether this node really enforces.",
    )
    .addHelpText(
      "after",
      `
Exit codes: 0 success, 1 refused or failed (the message names the reason),
2 usage error. Logs go to stderr (JSON lines unless stderr is a terminal);
results and events go to stdout.`,
    )
    .showHelpAfterError("(run 'aegisbpf --help' for usage)")
    .configureOutput({ writeOut: writeStdout, writeErr: writeStderr })
    .exitOverride();
  addRunCommand(program);
  addHealthCommands(program);
  addProbeCommand(program);
  addCapabilitiesCommand(program);
  addMetricsCommand(program);
  addPolicyCommand(program);
  addRuleCommands(program);
  addEmergencyCommands(program);
  addKeysCommand(program);
  addInstallCommand(program);
  addUninstallCommand(program);
  addVersionCommand(program);
  return program;
}

/** Run the CLI; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  await setupLogging(Deno.stderr.isTerminal() ? "text" : "json");
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return 2;
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version display exit 0; usage errors already printed usage.
      return e.exitCode === 0 ? 0 : 2;
    }
    if (e instanceof AegisError) {
      writeStderr(`aegisbpf: error [${e.code}]: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}
