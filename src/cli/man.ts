/**
 * The man page aegisbpf(1), generated from the command tree (tree.ts):
 * every command with its usage, description, options and the text its
 * `--help` adds. build/gen_man.ts writes it to docs/aegisbpf.1; a test
 * fails when the checked-in page differs from what the tree gives now, so
 * `--help` and the page cannot drift.
 *
 * @module
 */
import type { CommandUnknownOpts as Command } from "@commander-js/extra-typings";
import { allCommands, type CommandNode, commandTree, type OptionNode } from "./tree.ts";

/** Text for roff: backslashes and hyphens escaped, no line read as a request. */
export function roffText(text: string): string {
  return text
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .split("\n")
    .map((l) => (/^[.']/.test(l) ? `\\&${l}` : l))
    .join("\n");
}

/** A roff line for a quoted macro argument. */
function quoted(text: string): string {
  return `"${roffText(text).replace(/"/g, "\\(dq")}"`;
}

function optionItem(o: OptionNode): string {
  const extra: string[] = [];
  if (o.choices) extra.push(`One of: ${o.choices.join(", ")}.`);
  if (o.defaultValue !== null) extra.push(`Default: ${o.defaultValue}.`);
  if (o.env) extra.push(`Environment: ${o.env}.`);
  const flags = roffText(o.flags).replace(/<([^>]+)>/g, "<\\fI$1\\fR>");
  const body = [roffText(o.description), ...(extra.length ? [roffText(extra.join(" "))] : [])];
  return `.TP\n\\fB${flags}\\fR\n${body.join("\n.br\n")}`;
}

/** The text a command adds to its --help, kept as written (line breaks, indented examples). */
function helpAfter(c: CommandNode): string {
  return c.helpAfter === "" ? "" : `.PP\n.nf\n${roffText(c.helpAfter)}\n.fi`;
}

function commandSection(c: CommandNode): string {
  const title = ["aegisbpf", ...c.path, c.usage].filter((x) => x !== "").join(" ");
  const parts = [`.SS ${quoted(title)}`, roffText(c.description)];
  const own = c.options;
  if (own.length > 0) parts.push(...own.map(optionItem));
  const after = helpAfter(c);
  if (after) parts.push(after);
  return parts.join("\n");
}

/** The page, in man(7) roff. Stable: the same tree gives the same bytes. */
export function renderManPage(program: Command, version: string): string {
  const root = commandTree(program);
  const commands = allCommands(root).slice(1);
  const envs = allCommands(root).flatMap((c) =>
    c.options.filter((o) => o.env !== null).map((o) => ({ c, o }))
  );
  return [
    `.\\" Generated from the command tree by build/gen_man.ts (src/cli/man.ts). DO NOT EDIT.`,
    `.TH AEGISBPF 1 "" "aegisbpf ${roffText(version)}" "User Commands"`,
    ".SH NAME",
    `aegisbpf \\- ${roffText(root.description)}`,
    ".SH SYNOPSIS",
    ".B aegisbpf",
    "[\\fIglobal options\\fR] \\fIcommand\\fR [\\fIsubcommand\\fR] [\\fIoptions\\fR] " +
    "[\\fIarguments\\fR]",
    ".SH DESCRIPTION",
    roffText(root.description),
    helpAfter(root),
    ".SH GLOBAL OPTIONS",
    "Accepted before or after the command.",
    ...root.options.map(optionItem),
    ".SH COMMANDS",
    ...commands.map(commandSection),
    ...(envs.length === 0 ? [] : [
      ".SH ENVIRONMENT",
      ...envs.map(({ c, o }) =>
        `.TP\n.B ${roffText(o.env!)}\n` +
        roffText(
          `as ${["aegisbpf", ...c.path].join(" ")} ${o.long}` +
            (o.choices ? ` (${o.choices.join(", ")})` : "") +
            "; the option wins over the variable",
        )
      ),
    ]),
    ".SH SEE ALSO",
    roffText(
      "aegisbpf completion \\(em shell completion; docs/cli.md (conventions: exit codes, " +
        "--json, durations), docs/policy.md, docs/control.md, docs/telemetry.md in the source tree.",
    ).replace("\\e(em", "\\(em"),
    "",
  ].filter((l) => l !== "").join("\n") + "\n";
}
