// deno-lint-ignore-file no-console -- a build tool: its output is for the person building
/**
 * Writes docs/aegisbpf.1 (the man page) from the CLI's command tree
 * (src/cli/man.ts). src/cli/man_test.ts fails when the checked-in page is
 * stale.
 *
 *   deno run -A build/gen_man.ts           write docs/aegisbpf.1
 *   deno run -A build/gen_man.ts --check   exit 1 when it is stale
 *
 * @module
 */
import { BUILD } from "../src/assets/mod.ts";
import { buildProgram } from "../src/cli/mod.ts";
import { renderManPage } from "../src/cli/man.ts";

export const MAN_PAGE_PATH = new URL("../docs/aegisbpf.1", import.meta.url).pathname;

/** The page the current command tree gives. */
export async function currentManPage(): Promise<string> {
  return renderManPage(await buildProgram(), BUILD.agentVersion);
}

if (import.meta.main) {
  const text = await currentManPage();
  if (Deno.args.includes("--check")) {
    let shipped = "";
    try {
      shipped = Deno.readTextFileSync(MAN_PAGE_PATH);
    } catch { /* missing counts as stale */ }
    if (shipped !== text) {
      console.error(`${MAN_PAGE_PATH} is stale: run "deno task man" and commit it`);
      Deno.exit(1);
    }
    console.log(`${MAN_PAGE_PATH} is up to date`);
  } else {
    Deno.writeTextFileSync(MAN_PAGE_PATH, text);
    console.log(`wrote ${MAN_PAGE_PATH}`);
  }
}
