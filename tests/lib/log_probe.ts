/**
 * A test helper run as its own process (tests/artifacts/cli_conventions_test.ts):
 * the real CLI entry (src/cli/mod.ts main) with a fake daemon that writes one
 * log line at each level, so the test sees what --log-level and --log-format
 * (and their variables) make of them on stderr.
 */
import { main } from "../../src/cli/mod.ts";
import { log } from "../../src/log.ts";

if (import.meta.main) {
  Deno.exit(
    await main(Deno.args, {
      runDaemon: () => {
        const lg = log("probe");
        lg.trace("trace line");
        lg.debug("debug line");
        lg.info("info line {n}", { n: 7n, secretless: "yes" });
        lg.warn("warning line");
        lg.error("error line");
        return Promise.resolve();
      },
    }),
  );
}
