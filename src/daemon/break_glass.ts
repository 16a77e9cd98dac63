/**
 * Start order step 2 (docs/architecture.md, "The daemon"): break-glass
 * (kernel command line, marker files, a signed token; src/control/
 * break_glass.ts) forces audit. What was found but refused is logged.
 *
 * @module
 */
import {
  breakGlassPaths,
  type BreakGlassResult,
  detectBreakGlass,
} from "../control/break_glass.ts";
import { literal, log } from "../log.ts";
import { keysDir, loadTrustedKeys } from "../policy/keys.ts";
import type { AegisPaths } from "../contracts.ts";

export async function breakGlassAtStart(
  paths: Pick<AegisPaths, "etcDir" | "stateDir">,
): Promise<BreakGlassResult> {
  const lg = log("run");
  const trusted = await loadTrustedKeys(keysDir());
  const bg = await detectBreakGlass({
    ...breakGlassPaths(paths),
    trustedKeys: trusted.keys,
    now: Date.now(),
  });
  for (const why of bg.ignored) lg.warn(literal(`break-glass ignored: ${why}`));
  if (bg.active) lg.warn(literal(`BREAK-GLASS active (${bg.source}): ${bg.detail}`));
  return bg;
}
