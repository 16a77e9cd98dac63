/**
 * What the CLI answers before loading anything: the top-level help (stored
 * by `deno task man` in root_help.ts from the full command tree; man_test.ts
 * checks it) and the version. Listing the commands would otherwise load
 * every command file, and the argument parser itself is most of a short
 * command's start-up (docs/benchmarks.md, bench/cli). Imports nothing heavy.
 *
 * @module
 */
import { BUILD } from "../../dist/gen/embedded.ts";
import { writeStderr, writeStdout } from "../stdio.ts";
import { ROOT_HELP } from "./root_help.ts";

/** What `aegisbpf --version` prints (without the newline). */
export const VERSION_LINE = `aegisbpf ${BUILD.agentVersion}`;

/**
 * The exit code after answering `argv` here, or null when the full CLI must
 * run: no arguments (usage on stderr, exit 2), exactly `--help`/`-h`, or
 * exactly `--version`/`-V`.
 */
export function fastAnswer(argv: readonly string[]): number | null {
  if (argv.length === 0) {
    writeStderr(ROOT_HELP);
    return 2;
  }
  if (argv.length !== 1) return null;
  if (argv[0] === "--help" || argv[0] === "-h") {
    writeStdout(ROOT_HELP);
    return 0;
  }
  if (argv[0] === "--version" || argv[0] === "-V") {
    writeStdout(`${VERSION_LINE}\n`);
    return 0;
  }
  return null;
}
