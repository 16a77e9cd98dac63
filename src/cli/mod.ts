/**
 * The command-line interface: one file per command, wired here.
 *
 * @module
 */
import { Command, CommanderError } from "@commander-js/extra-typings";
import { EXIT_OUTCOME_UNKNOWN } from "../control/client.ts";
import { BUILD } from "../assets/mod.ts";
import { AegisError } from "../errors.ts";
import type { DaemonRunner } from "./run.ts";
import { setupLogging, writeStderr, writeStdout } from "../log.ts";

/** What a caller may replace in the program (tests: the daemon runner). */
export interface CliOverrides {
  runDaemon?: DaemonRunner;
}

type Adder = (program: Command, overrides: CliOverrides) => void;

/**
 * Each command file, by the top-level commands it adds. A call loads only the
 * file of the command it names: the daemon, the policy compiler and the
 * embedded native code are not evaluated for `emergency-status`. Help, no
 * command and an unknown command load every file, so usage and suggestions
 * list them all.
 */
const COMMAND_FILES: readonly [readonly string[], () => Promise<Adder>][] = [
  [["run"], async () => {
    const { addRunCommand } = await import("./run.ts");
    return (program, o) => addRunCommand(program, o.runDaemon);
  }],
  [["health", "doctor"], async () => (await import("./health.ts")).addHealthCommands],
  [["probe"], async () => (await import("./probe.ts")).addProbeCommand],
  [["capabilities"], async () => (await import("./capabilities.ts")).addCapabilitiesCommand],
  [["metrics"], async () => (await import("./metrics.ts")).addMetricsCommand],
  [["policy"], async () => (await import("./policy.ts")).addPolicyCommand],
  [["block", "allow", "network"], async () => (await import("./rules.ts")).addRuleCommands],
  [
    ["emergency-disable", "emergency-enable", "emergency-status", "break-glass"],
    async () => (await import("./emergency.ts")).addEmergencyCommands,
  ],
  [["keys"], async () => (await import("./keys.ts")).addKeysCommand],
  [["install"], async () => (await import("./install.ts")).addInstallCommand],
  [["uninstall"], async () => (await import("./uninstall.ts")).addUninstallCommand],
  [["version"], async () => (await import("./version.ts")).addVersionCommand],
];

/** Names of every top-level command, in help order. */
export const COMMAND_NAMES: readonly string[] = COMMAND_FILES.flatMap(([names]) => names);

/**
 * The program with the command `name` (every command when `name` is not one,
 * or is undefined).
 */
export async function buildProgram(
  name?: string,
  overrides: CliOverrides = {},
): Promise<Command> {
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
2 usage error, 3 outcome unknown (a change reached the daemon, then the
connection broke: check before retrying). Logs go to stderr (JSON lines unless stderr is a terminal);
results and events go to stdout.`,
    )
    .version(
      `aegisbpf ${BUILD.agentVersion}`,
      "-V, --version",
      "print the agent's version ('aegisbpf version --json' says what the binary is made of)",
    )
    .showHelpAfterError("(run 'aegisbpf --help' for usage)")
    .configureOutput({ writeOut: writeStdout, writeErr: writeStderr })
    .exitOverride();
  const one = COMMAND_FILES.find(([names]) => name !== undefined && names.includes(name));
  const files = one ? [one] : COMMAND_FILES;
  const adders = await Promise.all(files.map(([, load]) => load()));
  for (const add of adders) add(program, overrides);
  return program;
}

/** Run the CLI; returns the process exit code. */
export async function main(argv: string[], overrides: CliOverrides = {}): Promise<number> {
  const program = await buildProgram(argv[0], overrides);
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
      if (e.code === "OUTCOME_UNKNOWN") return EXIT_OUTCOME_UNKNOWN;
      return e.code === "USAGE" ? 2 : 1; // as --help promises: usage errors exit 2
    }
    throw e;
  }
}
