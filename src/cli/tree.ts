/**
 * The command tree as data, read from the commander program: what the
 * shell completions (completion.ts) and the man page (man.ts) are
 * generated from, so neither can list a command or option that `--help`
 * does not (and the tests check that they list every one).
 *
 * @module
 */
import type { CommandUnknownOpts as Command } from "@commander-js/extra-typings";

/** One visible option of a command. */
export interface OptionNode {
  /** as written in --help, e.g. "-V, --version" or "--ttl <duration>" */
  flags: string;
  long: string | null;
  short: string | null;
  description: string;
  /** takes a value (`<x>` or `[x]`) */
  takesValue: boolean;
  /** the values it accepts, when it names them */
  choices: string[] | null;
  /** default value, as --help shows it */
  defaultValue: string | null;
  /** environment variable that sets it, when one does */
  env: string | null;
}

/** One visible command: its path from the root, options, arguments and subcommands. */
export interface CommandNode {
  name: string;
  /** command names from the root's first subcommand, e.g. ["network", "deny", "add"] */
  path: string[];
  description: string;
  /** the usage line after the command path, e.g. "[options] <file>" */
  usage: string;
  /** text the command adds after its --help ("" when none) */
  helpAfter: string;
  options: OptionNode[];
  commands: CommandNode[];
}

function optionNode(o: {
  flags: string;
  long?: string;
  short?: string;
  description: string;
  required: boolean;
  optional: boolean;
  argChoices?: string[];
  defaultValue?: unknown;
  envVar?: string;
}): OptionNode {
  return {
    flags: o.flags,
    long: o.long ?? null,
    short: o.short ?? null,
    description: o.description,
    takesValue: o.required || o.optional,
    choices: o.argChoices ? [...o.argChoices] : null,
    defaultValue: o.defaultValue === undefined || typeof o.defaultValue === "boolean"
      ? null
      : String(o.defaultValue),
    env: o.envVar ?? null,
  };
}

/** The text `addHelpText("after", …)` adds to a command's --help. */
function afterHelpText(cmd: Command): string {
  let text = "";
  const emitter = cmd as unknown as { emit(event: string, ctx: unknown): boolean };
  emitter.emit("afterHelp", { error: false, command: cmd, write: (s: string) => (text += s) });
  return text.replace(/^\n+/, "").trimEnd();
}

/** The visible tree under `cmd` (hidden commands and options left out, as --help does). */
export function commandTree(cmd: Command, path: string[] = []): CommandNode {
  const help = cmd.createHelp();
  return {
    name: cmd.name(),
    path,
    description: cmd.description(),
    usage: cmd.usage(),
    helpAfter: afterHelpText(cmd),
    options: help.visibleOptions(cmd).map(optionNode),
    commands: help.visibleCommands(cmd).map((c) => commandTree(c, [...path, c.name()])),
  };
}

/** Every command of the tree, depth first, the root first. */
export function allCommands(root: CommandNode): CommandNode[] {
  return [root, ...root.commands.flatMap(allCommands)];
}
