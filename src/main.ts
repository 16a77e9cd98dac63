/**
 * Entry point of the aegisbpf executable (deno compile) and of the
 * development launcher scripts/aegisbpf. Wiring only: the top-level help and
 * the version (cli/fast.ts) and `health` against a running daemon
 * (cli/readiness.ts) are answered before the CLI is loaded.
 *
 * @module
 */
import { fastAnswer } from "./cli/fast.ts";

if (import.meta.main) {
  const fast = fastAnswer(Deno.args);
  if (fast !== null) Deno.exit(fast);
  if (Deno.args[0] === "health") { // readiness probes: a running daemon answers (cli/readiness.ts)
    const { readinessAnswer } = await import("./cli/readiness.ts");
    const code = await readinessAnswer(Deno.args);
    if (code !== null) Deno.exit(code);
  }
  const { main } = await import("./cli/mod.ts");
  Deno.exit(await main(Deno.args));
}
