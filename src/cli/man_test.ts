/**
 * docs/aegisbpf.1 is what the command tree gives now (so --help and the
 * man page cannot drift: after changing a command, `deno task man`), lists
 * every command and option, and groff renders it without a warning.
 */
import { ok, strictEqual } from "node:assert/strict";
import { currentManPage, MAN_PAGE_PATH } from "../../build/gen_man.ts";
import { buildProgram, COMMAND_NAMES, renderRootHelp } from "./mod.ts";
import { ROOT_HELP } from "./root_help.ts";
import { roffText } from "./man.ts";
import { allCommands, commandTree } from "./tree.ts";

const page = await currentManPage();

Deno.test("docs/aegisbpf.1 is up to date with the command tree (deno task man)", () => {
  const shipped = Deno.readTextFileSync(MAN_PAGE_PATH);
  strictEqual(
    shipped === page,
    true,
    `${MAN_PAGE_PATH} differs from what the command tree gives: run "deno task man" and commit it`,
  );
});

Deno.test("the man page has every command (with its usage) and every option", async () => {
  const commands = allCommands(commandTree(await buildProgram()));
  ok(commands.length > 40);
  for (const c of commands.slice(1)) {
    const title = roffText(["aegisbpf", ...c.path, c.usage].filter((x) => x !== "").join(" "));
    ok(page.includes(`.SS "${title}"`), `no section for ${c.path.join(" ")}`);
    for (const o of c.options) {
      ok(
        page.includes(`\\fB${roffText(o.flags).replace(/<([^>]+)>/g, "<\\fI$1\\fR>")}\\fR`),
        o.flags,
      );
    }
  }
});

Deno.test("roffText: no line of text is read as a request; backslashes and hyphens escaped", () => {
  strictEqual(roffText(".TH x\n'y\na-b\\c"), "\\&.TH x\n\\&'y\na\\-b\\ec");
});

// groff's check runs in the artifacts tier (tests/artifacts/man_page_test.ts: it spawns groff)

Deno.test("the stored top-level --help (root_help.ts) is what the full command tree prints", async () => {
  strictEqual(
    ROOT_HELP === await renderRootHelp(),
    true,
    'src/cli/root_help.ts differs from the command tree\'s help: run "deno task man" and commit it',
  );
  ok(ROOT_HELP.includes("Exit codes:"), "the text --help adds after the commands");
  for (const name of COMMAND_NAMES) ok(ROOT_HELP.includes(`\n  ${name}`), name);
});
