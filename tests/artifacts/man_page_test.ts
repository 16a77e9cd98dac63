/**
 * groff renders docs/aegisbpf.1 without a warning (here, not in the unit
 * tier, because it runs groff; src/cli/man_test.ts checks the page is what
 * the command tree gives).
 */
import { ok, strictEqual } from "node:assert/strict";
import { currentManPage } from "../../build/gen_man.ts";

const page = await currentManPage();

/** groff -ww's warnings about `text` (null: groff is not installed). */
async function groffWarnings(text: string): Promise<string | null> {
  let p: Deno.ChildProcess;
  try {
    p = new Deno.Command("groff", {
      args: ["-man", "-Tutf8", "-ww", "-z"],
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const w = p.stdin.getWriter();
  await w.write(new TextEncoder().encode(text));
  await w.close();
  const out = await p.output();
  const warnings = new TextDecoder().decode(out.stderr);
  return out.code === 0 ? warnings : `exit ${out.code}: ${warnings}`;
}

Deno.test("groff renders the page without warnings", async () => {
  const warnings = await groffWarnings(page);
  if (warnings === null) {
    Deno.stderr.writeSync(new TextEncoder().encode("skipped: groff is not installed\n"));
    return;
  }
  strictEqual(warnings, "");
  // and the check can fail: an unknown macro and escape are warned about
  ok(
    ((await groffWarnings(page + ".NOSUCHMACRO x\n\\fQ\n")) ?? "") !== "",
    "groff -ww said nothing",
  );
});
