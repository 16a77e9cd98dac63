/**
 * Entry point of the aegisbpf executable (deno compile) and of the
 * development launcher scripts/aegisbpf. Wiring only.
 *
 * @module
 */
import { main } from "./cli/mod.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
