/**
 * The completion scripts come from the command tree: every visible command
 * and option appears in each, and each shell's own parser accepts its
 * script (zsh and fish only where installed: build/apt-packages.txt lists
 * them for CI; here a missing shell is said and skipped).
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { buildProgram } from "./mod.ts";
import { completionScript, SHELLS } from "./completion.ts";
import { allCommands, commandTree } from "./tree.ts";

const program = await buildProgram();
const tree = commandTree(program);
const commands = allCommands(tree);

Deno.test("the tree has the commands and options the scripts must carry", () => {
  // guards the test below against an empty tree
  ok(commands.length > 40, `${commands.length} commands`);
  const paths = commands.map((c) => c.path.join(" "));
  for (const p of ["policy sign", "network deny add", "completion", "keys keygen"]) {
    ok(paths.includes(p), p);
  }
  ok(tree.options.some((o) => o.long === "--log-level"));
});

for (const shell of SHELLS) {
  Deno.test(`completion ${shell}: every command and option of the tree is in the script`, () => {
    const script = completionScript(program, shell);
    for (const c of commands) {
      if (c.path.length > 0) {
        // offered under its parent: each script's table entry for the parent names it
        const parent = ["aegisbpf", ...c.path.slice(0, -1)].join(" ");
        const under = {
          bash: `['${parent}']='`,
          zsh: `  '${parent}' '`,
          fish: `-n '__aegisbpf_at \\'${parent}\\'' -a '${c.name}'`,
        }[shell];
        const line = script.split("\n").find((l) =>
          l.includes(under) && (shell === "fish" || new RegExp(`[' \n]${c.name}[ ':\n]`).test(l))
        ) ?? (shell === "zsh" ? zshEntry(script, parent, c.name) : undefined);
        ok(line !== undefined, `${shell}: command ${c.path.join(" ")} not offered under ${parent}`);
      }
      for (const o of c.options) {
        for (const n of [o.long, o.short]) {
          if (n === null) continue;
          const asWritten = shell === "fish"
            ? (n.startsWith("--") ? `-l ${n.slice(2)}` : `-s ${n.slice(1)}`)
            : n;
          ok(script.includes(asWritten), `${shell}: ${c.path.join(" ")} ${n} missing`);
        }
        for (const v of o.choices ?? []) ok(script.includes(v), `${shell}: value ${v} missing`);
      }
    }
    // a hidden option (policy sign --output, an old name) is not offered
    ok(!/--output\b/.test(script), `${shell}: hidden --output offered`);
  });
}

/** zsh's entries span lines (name:description pairs); find the parent's block and the name in it. */
function zshEntry(script: string, parent: string, name: string): string | undefined {
  const start = script.indexOf(`  '${parent}' '`);
  if (start === -1) return undefined;
  const block = script.slice(start, script.indexOf("'\n", start + parent.length + 6) + 1);
  return block.split("\n").some((l) => l.replace(/^ {2}'.*?' '/, "").startsWith(`${name}:`))
    ? block
    : undefined;
}

async function has(cmd: string): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

const CHECK: Record<string, string[]> = { bash: ["-n"], zsh: ["-n"], fish: ["--no-execute"] };

for (const shell of SHELLS) {
  Deno.test(`completion ${shell}: the shell's parser accepts the script`, async () => {
    if (!(await has(shell))) {
      Deno.stderr.writeSync(
        new TextEncoder().encode(`skipped: ${shell} is not installed (apt-get install ${shell})\n`),
      );
      return;
    }
    const file = await Deno.makeTempFile({ suffix: `.${shell}` });
    try {
      Deno.writeTextFileSync(file, completionScript(program, shell));
      const r = await new Deno.Command(shell, { args: [...CHECK[shell], file] }).output();
      strictEqual(r.code, 0, new TextDecoder().decode(r.stderr));
      // and the check can fail: a broken script is refused
      Deno.writeTextFileSync(file, completionScript(program, shell) + "\nif then fi end )\n");
      const bad = await new Deno.Command(shell, { args: [...CHECK[shell], file], stderr: "null" })
        .output();
      ok(bad.code !== 0, `${shell} accepted a broken script`);
    } finally {
      Deno.removeSync(file);
    }
  });
}

/** Run `shell -c script`; null when the shell is not installed. */
async function shellOutput(shell: string, script: string): Promise<string | null> {
  if (!(await has(shell))) {
    Deno.stderr.writeSync(new TextEncoder().encode(`skipped: ${shell} is not installed\n`));
    return null;
  }
  const r = await new Deno.Command(shell, { args: ["-c", script] }).output();
  strictEqual(r.code, 0, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout);
}

Deno.test("completion zsh: the function completes real command lines (compsys calls recorded)", async () => {
  const file = await Deno.makeTempFile({ suffix: ".zsh" });
  try {
    Deno.writeTextFileSync(file, completionScript(program, "zsh"));
    // _describe, compadd and _files stand in for compsys: they print what they were given
    const out = await shellOutput(
      "zsh",
      `compdef() { :; }
source ${file}
_describe() { local -a arr; arr=("\${(@P)4}"); print -r -- "$2:\${(j:,:)\${(@)arr%%:*}}"; }
compadd() { local -a arr; arr=("\${(@P)2}"); print -r -- "values:\${(j:,:)arr}"; }
_files() { print -r -- files; }
t() { words=("$@"); CURRENT=$#; _aegisbpf; }
t aegisbpf policy ""
t aegisbpf network deny add --protocol ""
t aegisbpf --log-level debug block add --
t aegisbpf block add ""`,
    );
    if (out === null) return;
    deepStrictEqual(out.trim().split("\n"), [
      "commands:validate,lint,apply,rollback,export,verify,sign,show,help",
      "values:tcp,udp,any",
      "options:--ttl,--json,-h,--help,--log-level,--log-format",
      "files",
    ]);
  } finally {
    Deno.removeSync(file);
  }
});

Deno.test("completion fish: fish completes real command lines", async () => {
  const file = await Deno.makeTempFile({ suffix: ".fish" });
  try {
    Deno.writeTextFileSync(file, completionScript(program, "fish"));
    const out = await shellOutput(
      "fish",
      `source ${file}
complete -C "aegisbpf network deny "
echo ==
complete -C "aegisbpf --log-level debug network deny add --protocol "
echo ==
complete -C "aegisbpf policy sign --exp"`,
    );
    if (out === null) return;
    const [subs, values, opts] = out.split("==\n").map((b) =>
      b.trim().split("\n").map((l) => l.split("\t")[0])
    );
    deepStrictEqual(subs, ["add", "clear", "del", "help", "list"]);
    deepStrictEqual(values.sort(), ["any", "tcp", "udp"]);
    deepStrictEqual(opts, ["--expires-in"]);
  } finally {
    Deno.removeSync(file);
  }
});
