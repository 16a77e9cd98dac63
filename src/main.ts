/**
 * Entry point of the aegisbpf executable (deno compile) and of the
 * development launcher scripts/aegisbpf. Wiring only: the top-level help and
 * the version are answered before the CLI is loaded (cli/fast.ts).
 *
 * @module
 */
import { fastAnswer } from "./cli/fast.ts";

if (import.meta.main) {
  const fast = fastAnswer(Deno.args);
  if (fast !== null) Deno.exit(fast);
  const { main } = await import("./cli/mod.ts");
  Deno.exit(await main(Deno.args));
}
