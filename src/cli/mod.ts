/**
 * The command-line interface: one file per command, wired here.
 *
 * @module
 */
import { Command, CommanderError, Option } from "@commander-js/extra-typings";
import { EXIT_OUTCOME_UNKNOWN } from "../control/client.ts";
import { AegisError } from "../errors.ts";
import { fastAnswer, VERSION_LINE } from "./fast.ts";
import type { DaemonRunner } from "./run.ts";
import {
  type CliLogLevel,
  LOG_FORMATS,
  LOG_LEVELS,
  type LogFormat,
  outJson,
  setupLogging,
  writeStderr,
  writeStdout,
} from "../log.ts";

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
  [
    ["block", "allow", "network", "cgroup"],
    async () => (await import("./rules.ts")).addRuleCommands,
  ],
  [["stats"], async () => (await import("./stats.ts")).addStatsCommand],
  [["survival"], async () => (await import("./survival.ts")).addSurvivalCommand],
  [
    ["emergency-disable", "emergency-enable", "emergency-status", "break-glass"],
    async () => (await import("./emergency.ts")).addEmergencyCommands,
  ],
  [["explain"], async () => (await import("./explain.ts")).addExplainCommand],
  [["simulate"], async () => (await import("./simulate.ts")).addSimulateCommand],
  [["keys"], async () => (await import("./keys.ts")).addKeysCommand],
  [["install"], async () => (await import("./install.ts")).addInstallCommand],
  [["uninstall"], async () => (await import("./uninstall.ts")).addUninstallCommand],
  [["version"], async () => (await import("./version.ts")).addVersionCommand],
  [["completion"], async () => (await import("./completion.ts")).addCompletionCommand],
];

/** Help text is wrapped at this many columns on every terminal. */
export const HELP_WIDTH = 80;

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
connection broke: check before retrying), 4 applied but a rule is not enforced.
With --json a command prints one JSON object on stdout, errors included:
{"ok":false,"error":{"code":...,"message":...}}. Logs go to stderr (text on a
terminal, else JSON lines; --log-format), results and events go to stdout.`,
    )
    .addOption(
      new Option("--log-level <level>", "lowest level of the log lines written to stderr")
        .choices(LOG_LEVELS).env("AEGIS_LOG_LEVEL").default("info" as CliLogLevel),
    )
    .addOption(
      new Option(
        "--log-format <format>",
        "log lines on stderr: text (for people) or json (one object a line; docs/telemetry.md)",
      ).choices(LOG_FORMATS).env("AEGIS_LOG_FORMAT"),
    )
    .version(
      VERSION_LINE,
      "-V, --version",
      "print the agent's version ('aegisbpf version --json' says what the binary is made of)",
    )
    .showHelpAfterError("(run 'aegisbpf --help' for usage)")
    // one width whatever the terminal: the stored top-level help (root_help.ts) is that text
    .configureHelp({ helpWidth: HELP_WIDTH })
    .configureOutput({ writeOut: writeStdout, writeErr: writeStderr })
    .exitOverride();
  // the global options take effect before any command's action runs
  program.hook("preAction", async (root, action) => {
    const o = root.opts();
    jsonRequested = action.opts().json === true;
    await setupLogging(o.logFormat ?? defaultLogFormat(), o.logLevel);
  });
  const one = COMMAND_FILES.find(([names]) => name !== undefined && names.includes(name));
  const files = one ? [one] : COMMAND_FILES;
  const adders = await Promise.all(files.map(([, load]) => load()));
  for (const add of adders) add(program, overrides);
  return program;
}

/** Did the command being run get --json (set before its action runs)? */
let jsonRequested = false;

/** Without --log-format: text for a person at a terminal, JSON lines otherwise. */
function defaultLogFormat(): LogFormat {
  return Deno.stderr.isTerminal() ? "text" : "json";
}

/**
 * The JSON a command given --json prints when it fails: `ok` false and the
 * error's stable code and message, plus `details` when the error has
 * structured details (e.g. every issue of a rejected policy).
 */
export interface JsonFailure {
  ok: false;
  error: { code: string; message: string; details?: unknown };
}

/** The failure object for an error (see {@link JsonFailure}). */
export function jsonFailure(code: string, message: string, details?: unknown): JsonFailure {
  return {
    ok: false,
    error: details === undefined ? { code, message } : { code, message, details },
  };
}

/**
 * Was --json given on the command line (before a "--")? For errors before
 * any action ran (usage errors), where the parsed options are not known.
 */
function jsonInArgv(argv: readonly string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--json");
}

/** The top-level help exactly as the full program prints it (for root_help.ts). */
export async function renderRootHelp(): Promise<string> {
  const program = await buildProgram();
  let text = "";
  program.configureOutput({ writeOut: (s) => text += s, writeErr: (s) => text += s });
  program.outputHelp();
  return text;
}

/** Run the CLI; returns the process exit code. */
export async function main(argv: string[], overrides: CliOverrides = {}): Promise<number> {
  const fast = fastAnswer(argv);
  if (fast !== null) return fast;
  const program = await buildProgram(argv[0], overrides);
  // until the options are parsed (then the preAction hook configures it again)
  const level = LOG_LEVELS.find((l) => l === Deno.env.get("AEGIS_LOG_LEVEL")) ?? "info";
  const format = LOG_FORMATS.find((f) => f === Deno.env.get("AEGIS_LOG_FORMAT"));
  await setupLogging(format ?? defaultLogFormat(), level);
  jsonRequested = false;
  try {
    await program.parseAsync(argv, { from: "user" });
    return typeof Deno.exitCode === "number" ? Deno.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // help and version display exit 0; usage errors already printed usage.
      if (e.exitCode === 0) return 0;
      if (jsonRequested || jsonInArgv(argv)) {
        outJson(jsonFailure("USAGE", e.message.replace(/^error: /, "")));
      }
      return 2;
    }
    if (e instanceof AegisError) {
      writeStderr(`aegisbpf: error [${e.code}]: ${e.message}\n`);
      if (jsonRequested) {
        const details = (e as { details?: unknown }).details;
        outJson(jsonFailure(e.code, e.message, details));
      }
      if (e.code === "OUTCOME_UNKNOWN") return EXIT_OUTCOME_UNKNOWN;
      return e.code === "USAGE" ? 2 : 1; // as --help promises: usage errors exit 2
    }
    // a bug: the stack goes to stderr as before; a --json reader still gets its one object
    if (jsonRequested) {
      outJson(jsonFailure("INTERNAL", e instanceof Error ? e.message : String(e)));
    }
    throw e;
  }
}
